#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "agent/base/option_table.h"

namespace wattprobe {

/// One `[unit.NAME]` section of the config file: a service's own counter of the work it does
/// (requests, tokens, jobs), whose increase divides the energy of the workloads it names.
struct UnitSpec {
  std::string name;  // NAME of [unit.NAME]: the `unit` label
  /// The service's Prometheus endpoint (http:// or https://), or an absolute file path holding
  /// the text format (a textfile the service writes).
  std::string url;
  /// A counter, or a histogram's or summary's `_count` / `_sum`.
  std::string counter;
  /// `match = label=value` lines: only series carrying every one are summed.
  std::vector<std::pair<std::string, std::string>> match;
  /// Shell-style glob against the `workload` label; every workload it matches adds its energy.
  std::string workload;
  /// "config file F [unit.NAME]", for messages about this unit once the agent runs.
  std::string origin;
};

struct UnitOptions {
  std::vector<UnitSpec> units;
  /// --unit-window: the per-unit figures divide what the last window added up.
  std::chrono::milliseconds window{std::chrono::seconds(60)};
};

/// --unit-window; the [unit.NAME] sections are read by the config file's own parser.
OptionTable<UnitOptions> unit_option_table();

}  // namespace wattprobe
