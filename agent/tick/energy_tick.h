#pragma once

#include <cstdint>
#include <vector>

#include "agent/base/ended_workload.h"
#include "agent/base/workload_id.h"

namespace wattprobe {

/// One tick's host energy after attribution, in the form carbon accounting and the ledger use.
/// `joules` are summed over a set of domains that do not overlap (psys where the host has it,
/// else package + dram, plus gpu and platform meters), so adding them never counts a joule twice.
/// Invariant (docs/metrics.md, invariant 1): idle + Σ workloads + unattributed = measured.
struct EnergyTick {
  int64_t end_ms = 0;    // wall clock at the end of the tick, milliseconds since the epoch
  double seconds = 0;    // length of the tick
  bool measured = true;  // false when any domain in the sum came from the `model` estimate

  struct Workload {
    WorkloadId id;
    double joules = 0;
    /// This workload's share of the host's CPU capacity in the tick (cpu_ns / capacity_ns), the
    /// default key for sharing embodied carbon; 0..1, and the shares sum to at most 1.
    double host_share = 0;
    uint64_t cpu_ns = 0;
    /// The part of `joules` that came from `gpu` domains (already counted in `joules`), so the
    /// ledger can show a workload's GPU energy without looking it up in attribution's totals.
    double gpu_joules = 0;
  };
  std::vector<Workload> workloads;
  double idle_joules = 0;
  double unattributed_joules = 0;
  double measured_joules = 0;
  /// The `gpu` domains' part of idle_joules and unattributed_joules (already counted in them).
  double idle_gpu_joules = 0;
  double unattributed_gpu_joules = 0;
  /// Workloads that ended in this tick, with their run's totals; carbon adds the grams.
  std::vector<EndedWorkload> ended;
};

}  // namespace wattprobe
