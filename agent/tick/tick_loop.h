#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "agent/base/snapshot.h"
#include "agent/tick/self_metrics.h"

namespace wattprobe {

struct TickLoopOptions {
  std::chrono::milliseconds interval{1000};
  uint64_t max_ticks = 0;  // stop after this many ticks; 0 = until request_stop()
};

/// The cadence of the agent: calls `tick` every interval with the seconds since the previous
/// call, and measures what each call costs (wattprobe_agent_tick_duration_seconds). What a tick
/// does is the pipeline's (agent/pipeline.cc); this class only keeps time.
class TickLoop {
 public:
  explicit TickLoop(TickLoopOptions options) : options_(options) {}

  /// Runs ticks until request_stop() or max_ticks. A stop request ends the wait at once, so
  /// SIGTERM stops the agent within one tick's work, not one interval.
  void run(const std::function<void(double seconds)>& tick);
  /// Thread-safe.
  void request_stop();

  /// The agent's own cost, as of the last tick (the sampling thread's).
  void append_families(std::vector<Family>& out) const { self_.append_families(out); }

 private:
  TickLoopOptions options_;
  SelfMetrics self_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
};

}  // namespace wattprobe
