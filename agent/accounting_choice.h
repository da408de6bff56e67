#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

struct AccountingSettings {
  std::string mode = "auto";  // --accounting: auto | cgroup | bpf | procfs
  HostPaths paths;
  std::size_t max_workloads = 5000;
  bool per_process = false;  // per-process records, for --process-metrics-top and top
};

struct AccountingChoice {
  std::unique_ptr<CpuAccounting> accounting;
  /// Why this mode: "eBPF sched_switch accounting loaded", or why BPF could not load.
  std::string why;
};

/// --accounting=auto tries the kernel's per-cgroup time (cgroup), then the eBPF hooks (bpf, first
/// when per-process records are asked for), then /proc, with the reason; =cgroup and =bpf fail
/// with the reason instead of falling back; =procfs skips BPF.
Result<AccountingChoice> choose_accounting(const AccountingSettings& settings);

}  // namespace wattprobe
