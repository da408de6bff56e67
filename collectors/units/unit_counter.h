#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "agent/base/exposition_text.h"
#include "collectors/units/unit_spec.h"

namespace wattprobe {

/// The series of a unit's counter in one scrape: each label set (as one key) with its value.
struct CounterSeries {
  std::vector<std::pair<std::string, double>> series;
  /// Empty when the counter was found; else the reason label of
  /// wattprobe_agent_unit_scrape_errors_total (missing_counter, not_counter, malformed) and why.
  std::string reason;
  std::string detail;
};

/// Picks the unit's counter out of a parsed page: the samples named `spec.counter` (a counter, an
/// untyped sample as a textfile writes it, or a histogram's or summary's `_count` / `_sum`) whose
/// labels hold every `match` pair. A gauge is refused: it may go down, so its increase means
/// nothing. A negative, NaN or infinite value is malformed.
CounterSeries select_counter(const std::vector<ExpositionFamily>& families, const UnitSpec& spec);

/// Units counted from a counter's series, each series on its own (vLLM's `engine`, a summary per
/// route), so that a restart of the service never makes a negative or a huge step:
/// - the first reading is the baseline: units count from the agent's first look;
/// - a series that rose adds its rise; one that went down restarted and adds its new value;
/// - a series first seen after the baseline is a baseline of its own (its past is not this run's);
/// - a series that disappears adds nothing, and is remembered, so that its return is compared
///   with what it last said.
class CounterTotal {
 public:
  /// Adds what this reading rose by; returns that increase (>= 0).
  double update(const std::vector<std::pair<std::string, double>>& series);
  double total() const { return total_; }
  /// Series that went down: restarts of the service (or of one of its engines).
  uint64_t resets() const { return resets_; }

 private:
  /// Series remembered at most; past it, those absent from the reading are forgotten.
  static constexpr std::size_t kMaxSeries = 10000;
  bool baselined_ = false;
  std::unordered_map<std::string, double> last_;
  double total_ = 0;
  uint64_t resets_ = 0;
};

}  // namespace wattprobe
