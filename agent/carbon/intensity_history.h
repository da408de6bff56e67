#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

namespace wattprobe {

/// The grid intensity the agent has used, for the carbon-aware API's history routes: one entry
/// per UTC minute at most (its time-weighted mean), runs of equal minutes joined, kept for
/// `keep_ms`. A tick every 100 ms for 7 days is then at most 10,080 entries, never 6 million.
/// record() is the sampling thread's; the readers are the HTTP server's threads.
class IntensityHistory {
 public:
  static constexpr int64_t kKeepMs = 7 * 86'400'000LL;
  explicit IntensityHistory(int64_t keep_ms = kKeepMs) : keep_ms_(keep_ms) {}

  struct Span {
    int64_t start_ms = 0;
    int64_t end_ms = 0;
    double grams_per_kwh = 0;
  };

  /// The intensity in force over [from_ms, to_ms) (a tick).
  void record(int64_t from_ms, int64_t to_ms, double grams_per_kwh);
  /// The spans that overlap [from_ms, to_ms), in time order, cut to it.
  std::vector<Span> between(int64_t from_ms, int64_t to_ms) const;
  /// The time-weighted mean over what was recorded in [from_ms, to_ms); nullopt if nothing.
  std::optional<double> mean(int64_t from_ms, int64_t to_ms) const;
  std::size_t size() const;

 private:
  void close_minute();  // folds the open minute into spans_; mu_ held

  const int64_t keep_ms_;
  mutable std::mutex mu_;
  std::deque<Span> spans_;
  // The minute being filled: the integral and the time covered so far.
  int64_t open_minute_ = -1;
  int64_t open_start_ms_ = 0;
  int64_t open_end_ms_ = 0;
  int64_t open_covered_ms_ = 0;
  double open_integral_ = 0;
  static constexpr int64_t kJoinGapMs = 1000;
};

}  // namespace wattprobe
