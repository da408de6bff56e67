#include "agent/accounting_choice.h"

#include "bpf/sched_account_loader.h"
#include "collectors/cgroup_resolver.h"
#include "collectors/procfs_accounting.h"

namespace wattprobe {

Result<AccountingChoice> choose_accounting(const AccountingSettings& options) {
  AccountingChoice out;
  const bool per_process = options.per_process;
  if (options.mode != "procfs") {
    auto resolver = std::make_shared<CgroupResolver>(options.paths);
    AccountingOptions ao;
    ao.max_workloads = options.max_workloads;
    ao.per_process = per_process;
    auto bpf = load_bpf_accounting(options.paths, ao,
                                   [resolver](uint64_t id) { return resolver->resolve_id(id); });
    if (bpf.ok()) {
      out.accounting = std::move(bpf).value();
      out.why = "eBPF sched_switch and exit hooks loaded";
      return out;
    }
    if (options.mode == "bpf") return bpf.error();
    out.why = "eBPF accounting could not load (" + bpf.error().message() +
              "); using /proc, which misses processes that start and exit within one tick";
  } else {
    out.why = "--accounting=procfs";
  }
  out.accounting = make_procfs_accounting(options.paths, options.max_workloads, per_process);
  return out;
}

}  // namespace wattprobe
