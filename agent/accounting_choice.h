#pragma once

#include <memory>
#include <string>

#include "collectors/cpu_accounting.h"
#include "agent/options.h"
#include "agent/base/result.h"

namespace wattprobe {

struct AccountingChoice {
  std::unique_ptr<CpuAccounting> accounting;
  /// Why this mode: "eBPF sched_switch accounting loaded", or why BPF could not load.
  std::string why;
};

/// --accounting=auto tries eBPF and falls back to /proc with the reason; =bpf fails with the
/// reason instead of falling back; =procfs skips BPF.
Result<AccountingChoice> choose_accounting(const Options& options);

}  // namespace wattprobe
