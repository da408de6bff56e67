#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// One cumulative series and when it began counting from zero (wall clock, ms since the epoch).
struct SeriesStart {
  std::string family;
  Labels labels;
  int64_t start_ms = 0;

  bool operator==(const SeriesStart&) const = default;
};

/// When each cumulative series (every counter, and the histogram) of the published snapshots
/// began counting from zero: what OTLP calls a cumulative point's start time. A total the
/// checkpoint continues keeps the start time the checkpoint recorded for it, so a restart is not
/// a reset to a consumer. Sampling thread only.
class SeriesStarts {
 public:
  /// Start times from a checkpoint, before the first tick.
  void restore(const std::vector<SeriesStart>& starts);
  /// After each tick. A series seen for the first time, or whose value went down (a reset),
  /// starts at `interval_start_ms`: the end of the previous tick, or the agent's start for the
  /// first. A series absent from `snapshot` is forgotten: if it comes back it counts anew.
  void observe(const Snapshot& snapshot, int64_t interval_start_ms);
  /// 0 when the series was never observed or restored.
  int64_t start_ms(std::string_view family, const Labels& labels) const;
  /// Every series known now, for the checkpoint.
  std::vector<SeriesStart> entries() const;
  std::size_t size() const { return by_key_.size(); }

  /// The identity of a series: its family and its labels sorted by name, empty values left out
  /// (Prometheus's reading of an empty label). Label order and empty labels do not make a
  /// different series.
  static std::string key(std::string_view family, const Labels& labels);

 private:
  struct Entry {
    int64_t start_ms = 0;
    double last = 0;
    bool restored = false;  // no value seen yet: the first one cannot be a reset
    uint64_t seen = 0;      // the observe() generation that last saw it
  };
  std::unordered_map<std::string, Entry> by_key_;
  uint64_t generation_ = 0;
};

}  // namespace wattprobe
