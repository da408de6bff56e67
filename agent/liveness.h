#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "agent/base/sink.h"
#include "exporters/prometheus_pull.h"

namespace wattprobe {

/// Whether the tick loop still runs, for /healthz. A process that answers HTTP but no longer
/// ticks (a sysfs read that never returns, a deadlock) exports frozen figures, so a probe must
/// fail then too, not only when the process is gone.
class Liveness : public SnapshotSink {
 public:
  explicit Liveness(std::chrono::milliseconds interval) : interval_(interval) {}

  void on_snapshot(const SnapshotPtr&) override;

  /// The answer now; safe to call from any thread.
  HealthAnswer answer() const;

  /// 200 "ok" while the last tick is at most three intervals old; 503 with the reason before the
  /// first tick (`age` empty) and after. Three, so one slow tick on a loaded host does not fail
  /// a probe, while a hung loop fails it within seconds at the default interval.
  static HealthAnswer judge(std::optional<std::chrono::nanoseconds> age,
                            std::chrono::milliseconds interval);

 private:
  std::chrono::milliseconds interval_;
  std::atomic<int64_t> last_tick_ns_{-1};  // steady clock: immune to wall-clock steps
};

}  // namespace wattprobe
