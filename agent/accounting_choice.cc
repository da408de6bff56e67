#include "agent/accounting_choice.h"

#include "bpf/cgroup_usage_loader.h"
#include "bpf/sched_account_loader.h"
#include "collectors/cpu/procfs_accounting.h"
#include "collectors/identity/cgroup_resolver.h"

namespace wattprobe {

Result<AccountingChoice> choose_accounting(const AccountingSettings& options) {
  AccountingChoice out;
  const bool per_process = options.per_process;
  auto resolver = std::make_shared<CgroupResolver>(options.paths);
  auto resolve = [resolver](uint64_t id) { return resolver->resolve_id(id); };
  std::string cgroup_why;
  // The kernel's own per-cgroup time costs nothing per context switch, so it comes first; it
  // has no per-process records, which only the sched_switch hook (or /proc) gives.
  if (options.mode == "cgroup" && per_process)
    return Error{ErrorKind::unsupported, "--process-metrics-top",
                 "cgroup accounting has no per-process records; use --accounting auto or bpf"};
  if (options.mode == "cgroup" || (options.mode == "auto" && !per_process)) {
    CgroupAccounting::Options co;
    co.max_workloads = options.max_workloads;
    auto cgroup = CgroupAccounting::load(options.paths, co, resolve);
    if (cgroup.ok()) {
      out.accounting = std::move(cgroup).value();
      out.why =
          "the kernel's per-cgroup CPU time (cgroup v2 rstat) read once a tick by a BPF "
          "cgroup iterator: nothing runs per context switch";
      return out;
    }
    if (options.mode == "cgroup") return cgroup.error();
    cgroup_why = "cgroup accounting could not load (" + cgroup.error().message() + "); ";
  }
  if (options.mode != "procfs") {
    AccountingOptions ao;
    ao.max_workloads = options.max_workloads;
    ao.per_process = per_process;
    auto bpf = load_bpf_accounting(options.paths, ao, resolve);
    if (bpf.ok()) {
      out.accounting = std::move(bpf).value();
      out.why = cgroup_why + (per_process && options.mode == "auto"
                                  ? "eBPF sched_switch and exit hooks loaded, for the per-process "
                                    "records --process-metrics-top needs"
                                  : "eBPF sched_switch and exit hooks loaded");
      return out;
    }
    if (options.mode == "bpf") return bpf.error();
    out.why = cgroup_why + "eBPF accounting could not load (" + bpf.error().message() +
              "); using /proc, which misses processes that start and exit within one tick";
  } else {
    out.why = "--accounting=procfs";
  }
  out.accounting = make_procfs_accounting(options.paths, options.max_workloads, per_process);
  return out;
}

}  // namespace wattprobe
