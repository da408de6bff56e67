#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/series_starts.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

/// What the running agent lends its sinks at start: kept by the sink for its life.
struct SinkContext {
  /// The running agent's log: one line each, without a prefix.
  std::function<void(const std::string&)> log = [](const std::string&) {};
  /// When each cumulative series began, restored from the checkpoint and saved to it. A sink that
  /// reports start times (OTLP) observes each snapshot into it; the others leave it alone.
  SeriesStarts* series_starts = nullptr;
  /// Wall clock when the agent started: the start of the first tick's series.
  int64_t started_ms = 0;
};

/// A consumer of the agent's snapshots: /metrics, remote-write, OTLP, the guest energy folders,
/// /healthz, `top`'s screen, `validate`, the carbon-aware API. The pipeline holds a list of them
/// and loops over it, naming none (as Envoy's Stats::Sink sits beside the snapshot it flushes).
/// Every method but on_snapshot has a default, so a sink says only what it does.
class SnapshotSink {
 public:
  virtual ~SnapshotSink() = default;

  /// After the privilege drop, before the first tick: open files, start threads. The error's
  /// detail is why the agent must not start, as one line for the log.
  virtual Result<bool> start(const SinkContext&) { return true; }

  /// Every published snapshot, on the sampling thread, after the tick. Must not block for long:
  /// a sink with slow work queues it for a thread of its own.
  virtual void on_snapshot(const SnapshotPtr& snapshot) = 0;

  /// The sink's own metrics, added to every snapshot before it is published.
  virtual void append_families(std::vector<Family>&) const {}

  /// After the last tick: begin whatever takes time (a final flush), so that it overlaps the
  /// other sinks' stopping.
  virtual void begin_stop() {}
  /// Wait for what begin_stop() began: the pipeline's own sinks, when the pipeline goes (after
  /// the HTTP server has closed, so the two overlap); a caller's sink, when the caller says.
  virtual void finish_stop() {}
};

}  // namespace wattprobe
