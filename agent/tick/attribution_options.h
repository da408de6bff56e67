#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "agent/base/option_table.h"

namespace wattprobe {

/// Where idle energy goes (README "Idle power"). `separate` keeps it in its own series, as
/// Kepler ≥ 0.10 does; `proportional` gives it to workloads by their share of the tick's CPU;
/// `even` splits it equally over the workloads that ran in the tick.
enum class IdlePolicy { separate, proportional, even };

/// What divides a domain's dynamic energy: on-CPU time, or cycles where the PMU counts them.
enum class SplitKey { automatic, cpu_time, cycles };

struct AttributionOptions {
  IdlePolicy idle_policy = IdlePolicy::separate;
  SplitKey split_by = SplitKey::automatic;
  std::map<std::string, double> idle_watts;  // domain → W per socket row, overriding the estimate
  std::chrono::milliseconds workload_expiry{std::chrono::minutes(5)};
  /// Workloads whose series are kept (--max-workloads); past it the longest idle leave first,
  /// as carbon's do, so every per-workload family holds the same workloads.
  std::size_t max_workloads = 5000;
  /// Export the top N processes by energy (`--process-metrics-top`); 0 keeps no per-process
  /// state at all.
  std::size_t process_metrics_top = 0;
};

/// --idle-attribution's words.
const std::vector<Choice<IdlePolicy>>& idle_policies();

/// --idle-attribution, --idle-watts, --split-by, --workload-expiry.
OptionTable<AttributionOptions> attribution_option_table();

}  // namespace wattprobe
