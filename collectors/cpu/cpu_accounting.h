#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/workload_id.h"

namespace wattprobe {

struct WorkloadCpu {
  WorkloadId id;
  uint64_t cpu_ns = 0;  // on-CPU time in this tick, all CPUs
  uint64_t cycles = 0;  // 0 where the PMU is absent
  uint64_t instructions = 0;
};

struct ProcessCpu {
  uint32_t pid = 0;
  uint64_t start_time_ns = 0;  // with pid, the task's identity across PID reuse
  std::string comm;
  std::size_t workload = 0;  // index into CpuTick::workloads
  uint64_t cpu_ns = 0;
};

/// One tick of CPU accounting: per-workload on-CPU time since the previous drain.
struct CpuTick {
  std::vector<WorkloadCpu> workloads;  // those with cpu_ns > 0 this tick
  std::vector<ProcessCpu> processes;   // per task group; only when asked for (top-N metrics, top)
  uint64_t idle_ns = 0;                // idle time summed over CPUs
  uint64_t capacity_ns = 0;            // online CPUs × wall time of the tick
  /// CPU time known to have been used but given to no workload: lost BPF records, workloads
  /// past the cap. Attribution turns its share of energy into unattributed energy.
  uint64_t unaccounted_ns = 0;
  uint64_t records_lost = 0;       // BPF map overflow events this tick
  uint64_t workloads_dropped = 0;  // distinct workloads past the cap this tick
  /// Workloads that ended since the last drain: the last cgroup that held them was removed. Only
  /// the cgroup mode sees removals; the others leave it empty.
  std::vector<WorkloadId> ended;
};

/// Per-workload CPU time source: eBPF (bpf/) or the /proc fallback (collectors/procfs_accounting).
class CpuAccounting {
 public:
  virtual ~CpuAccounting() = default;
  /// "bpf" or "procfs": the mode label of wattprobe_agent_accounting_mode.
  virtual std::string_view mode() const = 0;
  /// CPU time since the previous drain. The first call primes and may return an empty tick.
  virtual CpuTick drain() = 0;
  /// One read of the kernel's data the way drain() reads it, consuming nothing: false when the
  /// kernel refuses it. The privilege drop asks it with a capability lowered, to keep only what
  /// the reads really need. Files under /proc need nothing, so the default is true.
  virtual bool kernel_reads_allowed() const { return true; }
};

}  // namespace wattprobe
