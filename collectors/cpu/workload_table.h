#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// Sums per-task CPU time into per-workload time for one tick, tracking at most `max_workloads`
/// distinct workloads (Invariant 5: memory bounded whatever the churn).
///
/// A workload admitted once keeps its slot across ticks, so a busy workload is never pushed out
/// by newcomers; a slot is freed after `idle_ticks_to_forget` consecutive finish() calls with no
/// CPU, and that is what bounds memory. Time of workloads refused by the cap is not lost: it goes
/// to CpuTick::unaccounted_ns (unattributed energy), and the distinct refusals to
/// CpuTick::workloads_dropped. Not thread-safe: one accounting loop owns it.
class WorkloadTable {
 public:
  explicit WorkloadTable(std::size_t max_workloads, std::size_t idle_ticks_to_forget = 300);

  /// Adds one task's CPU time of this tick. Returns the workload's slot (stable while it is
  /// tracked; put it in ProcessCpu::workload, finish() renumbers it), or nullopt when the
  /// workload is new and the table is full.
  std::optional<std::size_t> add(const WorkloadId& id, uint64_t cpu_ns, uint64_t cycles = 0,
                                 uint64_t instructions = 0);

  /// Moves this tick's sums into out.workloads (only workloads with cpu_ns > 0), adds refused
  /// time to out.unaccounted_ns and refused workloads to out.workloads_dropped, rewrites each
  /// out.processes[i].workload from slot to its index in out.workloads (dropping processes whose
  /// workload had no CPU this tick), ages idle workloads and starts the next tick.
  void finish(CpuTick& out);

  std::size_t tracked() const { return index_.size(); }
  std::size_t max_workloads() const { return max_workloads_; }

 private:
  struct Slot {
    WorkloadId id;
    uint64_t cpu_ns = 0;
    uint64_t cycles = 0;
    uint64_t instructions = 0;
    std::size_t idle_ticks = 0;
    bool used = false;
    bool touched = false;  // added to this tick (even with 0 ns)
  };

  std::size_t max_workloads_;
  std::size_t idle_ticks_to_forget_;
  std::vector<Slot> slots_;
  std::vector<std::size_t> free_;
  std::unordered_map<WorkloadId, std::size_t, WorkloadIdHash> index_;
  std::vector<std::size_t> touched_;                   // slots added to this tick
  std::unordered_set<std::size_t> refused_this_tick_;  // hashes of refused workloads
  uint64_t refused_ns_ = 0;
};

}  // namespace wattprobe
