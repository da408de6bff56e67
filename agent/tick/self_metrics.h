#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// The agent's own cost, so its footprint can be proven (wattprobe_agent_*). Reads the agent's
/// own process (getrusage, /proc/self/statm), not the monitored host, so it ignores the
/// configured procfs root.
class SelfMetrics {
 public:
  void record_tick(std::chrono::nanoseconds duration);
  void append_families(std::vector<Family>& out) const;

 private:
  double last_tick_seconds_ = 0;
  double tick_seconds_sum_ = 0;
  uint64_t ticks_ = 0;
  // Histogram buckets (seconds, cumulative) for tick duration: a tick should cost well under
  // a millisecond; the upper buckets catch stalls.
  static constexpr double kBounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                       0.005,  0.01,    0.025,  0.1,   1.0};
  uint64_t buckets_[std::size(kBounds)] = {};
};

/// Resident set size of this process in bytes, 0 if unknown.
uint64_t self_resident_bytes();
/// User + system CPU seconds of this process.
double self_cpu_seconds();

}  // namespace wattprobe
