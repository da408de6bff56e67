#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/base/snapshot.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// Cumulative energy per process, for the opt-in `--process-metrics-top N` family
/// `wattprobe_process_energy_joules_total{pid,comm,workload}` (docs/metrics.md).
///
/// A process's joules in a tick are its share of its workload's CPU time times the workload's
/// joules, summed over the host's non-overlapping domains (EnergyTick). A process is one
/// identity, pid + start time: when the kernel reuses a pid, the older process has exited and
/// its total ends; the newer one starts a fresh series.
///
/// Memory is bounded whatever the churn (docs/metrics.md, invariant 5): at most `cap()` processes
/// are kept between ticks. Processes not seen for the workload expiry leave; past the cap the
/// smallest totals leave first (oldest last seen among equals), counted in
/// `wattprobe_agent_processes_evicted_total`. Exited and sleeping processes look the same to
/// accounting (neither ran in the tick), so eviction ranks by energy rather than by absence: a
/// large, idle server outranks a crowd of short-lived processes. Since the cap is at least 4 × N,
/// an exported process is never evicted by newcomers smaller than it.
class ProcessEnergy {
 public:
  ProcessEnergy(std::size_t top, std::chrono::milliseconds expiry);

  /// `workload_joules[i]` is what cpu.workloads[i] received this tick. `now_ms` is wall clock.
  void add(const CpuTick& cpu, std::span<const double> workload_joules, int64_t now_ms);

  /// GPU joules of one process in this tick (its part of a GPU's split,
  /// collectors/gpu/gpu_split.h): added to the process's total, which then holds its CPU and GPU
  /// energy.
  void add_gpu(uint32_t pid, const std::string& comm, const std::string& workload, double joules,
               int64_t now_ms);

  struct Total {
    uint32_t pid = 0;
    uint64_t start_time_ns = 0;
    std::string comm;      // printable ASCII only: it becomes a label value
    std::string workload;  // the workload label of the process's last tick
    double joules = 0;
    int64_t last_seen_ms = 0;
  };
  /// The top N by cumulative joules, largest first (ties: lower pid first).
  std::vector<Total> top() const;

  void append_families(std::vector<Family>& out) const;

  std::size_t tracked() const { return by_pid_.size(); }
  std::size_t cap() const { return cap_; }
  uint64_t evicted() const { return evicted_; }

 private:
  void enforce_cap();

  std::size_t top_;
  std::size_t cap_;
  std::chrono::milliseconds expiry_;
  // One live identity per pid: a newer start time replaces the older process.
  std::unordered_map<uint32_t, Total> by_pid_;
  uint64_t evicted_ = 0;
};

}  // namespace wattprobe
