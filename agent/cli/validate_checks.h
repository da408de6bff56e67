#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// One claim `wattprobe validate` checked, as report.json carries it. `kind` says how `bound`
/// reads: "max" (the value must stay at or below it, an error) or "min" (at or above it, a
/// capture rate). A check the host cannot run has no pass (null) and says why in `detail`.
struct ValidateCheck {
  std::string name;
  std::optional<double> value;
  std::string unit;
  std::optional<double> bound;
  std::string kind = "max";
  std::optional<bool> pass;
  std::string detail;

  /// Sets pass from value, bound and kind.
  ValidateCheck& judge();
};

/// One tick as validate saw it: the pipeline's snapshot and, per powercap zone, the raw
/// energy_uj read right after it (to see wraps happen).
struct ValidateTick {
  double seconds = 0;  // monotonic, since validate started
  SnapshotPtr snapshot;
  std::map<std::string, double> raw_uj;  // zone key → energy_uj
};

/// A powercap zone's identity and what sysfs states about it.
struct PowercapZoneFacts {
  std::string key;  // intel-rapl:0
  std::string domain;
  std::string socket;
  double max_energy_range_uj = 0;
  /// The highest power the zone states it may draw: the largest constraint_*_max_power_uw or
  /// constraint_*_power_limit_uw, in W; 0 when it states none.
  double ceiling_watts = 0;
};

/// Σ of a family's series whose labels hold every (key, value) in `want`.
double family_sum(const Snapshot& s, const std::string& family,
                  const std::map<std::string, std::string>& want = {});
std::string label_of(const Series& s, const std::string& key);

/// Per tick and domain: idle + Σ workloads + unattributed against the node's measured energy.
std::vector<ValidateCheck> conservation_checks(const std::vector<ValidateTick>& ticks);

/// Counters over the run: each CPU-driven counter advanced under load and ran slower at idle;
/// no total stepped back (a wrap handled wrong would); no tick drew more than the zone's stated
/// ceiling; a second meter (psys, a platform meter) holds at least package + dram.
/// `idle` and `load` are [first, last] tick indices of the two phases.
std::vector<ValidateCheck> counter_checks(const std::vector<ValidateTick>& ticks,
                                          std::pair<size_t, size_t> idle,
                                          std::pair<size_t, size_t> load,
                                          const std::vector<PowercapZoneFacts>& zones);

/// The idle power in force at the end, per row: its error against `truth` (domain → W per
/// socket row) when given, else the estimate and its spread over the last half of the run.
std::vector<ValidateCheck> idle_checks(const std::vector<ValidateTick>& ticks,
                                       const std::map<std::string, double>& truth);

}  // namespace wattprobe
