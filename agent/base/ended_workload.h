#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "agent/base/workload_id.h"

namespace wattprobe {

/// A workload that ended (its cgroup was removed; one that only goes idle has not), with what it
/// used from its first tick to its last: a batch job's record (docs/job-records.md). Figures are
/// the workload's own run: a name that runs again after it ended starts a new record.
struct EndedWorkload {
  WorkloadId id;
  int64_t first_seen_ms = 0;  // wall clock of its first tick (restored across a restart)
  int64_t last_seen_ms = 0;   // wall clock of its last tick with CPU time
  int64_t ended_ms = 0;       // wall clock of the tick that found its cgroup gone
  double cpu_seconds = 0;
  struct Domain {
    std::string source;
    std::string domain;
    double joules = 0;
    bool measured = true;  // false: the source is the `model` estimate
  };
  std::vector<Domain> domains;  // every domain it was given energy in; they overlap
  /// Its share of E_host, counted once (wattprobe_workload_host_energy_joules_total).
  double host_joules = 0;
  double operational_grams = 0;
  double embodied_grams = 0;
  /// Functional units a unit section counted for it: {unit name: count}; empty: none.
  std::map<std::string, double> units;
};

}  // namespace wattprobe
