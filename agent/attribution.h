#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/cpu_accounting.h"
#include "agent/energy_meter.h"
#include "agent/energy_tick.h"
#include "agent/idle_power.h"
#include "agent/process_energy.h"
#include "agent/snapshot.h"

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
  /// Export the top N processes by energy (`--process-metrics-top`); 0 keeps no per-process
  /// state at all.
  std::size_t process_metrics_top = 0;
};

/// Every cumulative total attribution keeps: what a checkpoint saves and restores.
struct AttributionTotals {
  struct Workload {
    WorkloadId id;
    double cpu_seconds = 0;
    int64_t last_seen_ms = 0;  // wall clock; a restored workload still expires on time
    std::map<std::pair<std::string, std::string>, double> joules;  // {source, domain} → J
  };
  std::vector<Workload> workloads;
  std::map<std::string, double> idle_joules;          // by domain
  std::map<std::string, double> unattributed_joules;  // by domain
};

/// Splits each tick's measured joules of every domain into idle + one share per workload +
/// unattributed (DESIGN.md invariant 1) and keeps the per-workload totals.
class Attribution {
 public:
  explicit Attribution(AttributionOptions options);

  /// One tick. `now_ms` is wall-clock time at its end.
  EnergyTick apply(const NodeEnergy& energy, const CpuTick& cpu, int64_t now_ms);

  void append_families(std::vector<Family>& out) const;

  uint64_t conservation_violations() const { return violations_; }

  /// Per-process totals; empty unless options.process_metrics_top > 0.
  const ProcessEnergy& processes() const { return processes_; }

  struct WorkloadTotals {
    WorkloadId id;
    double cpu_seconds = 0;
    int64_t last_seen_ms = 0;
    // {source, domain} → joules since first start; and the last tick's watts.
    std::map<std::pair<std::string, std::string>, double> joules;
    std::map<std::pair<std::string, std::string>, double> watts;
  };
  const std::unordered_map<std::string, WorkloadTotals>& workloads() const { return workloads_; }

  /// The totals of the workloads still tracked (expired ones have left /metrics; the ledger
  /// keeps their history) and of idle and unattributed energy.
  AttributionTotals totals() const;
  /// Continues totals from a checkpoint.
  void restore(const AttributionTotals& totals);
  void restore_workload(const WorkloadId& id, double cpu_seconds,
                        const std::map<std::pair<std::string, std::string>, double>& joules);
  void restore_node(const std::string& domain, double idle_joules, double unattributed_joules);

 private:
  using RowKey = std::tuple<std::string, std::string, int>;

  AttributionOptions options_;
  std::map<RowKey, IdlePowerEstimator> idle_;
  std::unordered_map<std::string, WorkloadTotals> workloads_;
  std::map<std::string, double> idle_total_;                      // by domain
  std::map<std::string, double> unattributed_total_;              // by domain
  std::map<RowKey, std::pair<double, std::string>> idle_now_;     // W and method, for export
  std::map<std::pair<std::string, std::string>, bool> measured_;  // {source, domain}
  ProcessEnergy processes_;
  uint64_t violations_ = 0;
  uint64_t records_lost_ = 0;
  uint64_t workloads_dropped_ = 0;
};

/// Label-safe key of a workload identity, unique per identity.
std::string workload_key(const WorkloadId& id);

/// Whether `domain` is in the non-overlapping set summed for carbon (energy_tick.h): platform
/// meters if any, else psys, else package + dram + gpu.
std::vector<bool> host_sum_domains(const NodeEnergy& energy);

}  // namespace wattprobe
