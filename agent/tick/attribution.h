#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "agent/base/snapshot.h"
#include "agent/tick/attribution_options.h"
#include "agent/tick/energy_meter.h"
#include "agent/tick/energy_tick.h"
#include "agent/tick/idle_power.h"
#include "agent/tick/process_energy.h"
#include "collectors/cpu/cpu_accounting.h"
#include "collectors/gpu/gpu_split_source.h"

namespace wattprobe {

/// Every cumulative total attribution keeps: what a checkpoint saves and restores.
struct AttributionTotals {
  struct Workload {
    WorkloadId id;
    double cpu_seconds = 0;
    int64_t last_seen_ms = 0;  // wall clock; a restored workload still expires on time
    std::map<std::pair<std::string, std::string>, double> joules;  // {source, domain} → J
    /// The GPU part of `joules`: {source, device, split method} → J.
    std::map<std::tuple<std::string, int, std::string>, double> gpu_joules;
    /// Its share of E_host (wattprobe_workload_host_energy_joules_total).
    double host_joules = 0;
    /// Wall clock of its run's first tick (0: unknown, from an older checkpoint), and whether
    /// the run ended (its job record is written; a next run starts a new one).
    int64_t first_seen_ms = 0;
    bool ended = false;
  };
  std::vector<Workload> workloads;
  std::map<std::string, double> idle_joules;          // by domain
  std::map<std::string, double> unattributed_joules;  // by domain
  double platform_shortfall_joules = 0;  // wattprobe_node_platform_shortfall_joules_total
  double host_joules = 0;                // wattprobe_node_host_energy_joules_total
};

/// Splits each tick's measured joules of every domain into idle + one share per workload +
/// unattributed (docs/metrics.md, invariant 1) and keeps the per-workload totals.
///
/// Cost: a tick is linear in the workloads that ran plus those tracked, with no string building
/// or ordered-map lookups per workload. Workloads live in a slot table keyed by WorkloadId;
/// {source, domain} pairs and (source, domain, socket) rows are interned to small indices, so a
/// workload's totals are a short vector indexed by the pair (tests/bench/tick_bench.cc).
class Attribution {
 public:
  explicit Attribution(AttributionOptions options);

  /// One tick. `now_ms` is wall-clock time at its end. A `gpu` domain is never split by CPU
  /// time: an nvml row is split by `gpu`'s per-process shares of its device (socket = device
  /// index), and any other gpu row's dynamic energy is unattributed (no per-process signal).
  EnergyTick apply(const NodeEnergy& energy, const CpuTick& cpu, int64_t now_ms,
                   const GpuTick* gpu = nullptr);

  void append_families(std::vector<Family>& out) const;

  uint64_t conservation_violations() const { return violations_; }

  /// Workloads whose series are exported (seen within the expiry, or restored).
  std::size_t workload_count() const { return slot_of_.size(); }

  /// Per-process totals; empty unless options.process_metrics_top > 0.
  const ProcessEnergy& processes() const { return processes_; }

  /// The totals of the workloads still tracked (expired ones have left /metrics; the ledger
  /// keeps their history) and of idle and unattributed energy.
  AttributionTotals totals() const;
  /// Continues totals from a checkpoint.
  void restore(const AttributionTotals& totals);
  void restore_workload(const WorkloadId& id, double cpu_seconds,
                        const std::map<std::pair<std::string, std::string>, double>& joules);
  void restore_node(const std::string& domain, double idle_joules, double unattributed_joules);

 private:
  /// One {source, domain} pair: a (source, domain) label pair of the workload families.
  struct Pair {
    std::string source, domain;
    int measured = -1;  // -1 until a tick shows it (restored totals): exported as measured
  };
  /// One (source, domain, socket) row of NodeEnergy, with its idle estimator.
  struct Row {
    std::size_t pair = 0;
    IdlePowerEstimator idle;
    double idle_watts = 0;  // in force at the last tick, for export
    std::string method = "none";
  };
  struct Cell {
    double joules = 0;
    double watts = 0;  // last tick's, summed over the pair's socket rows
    bool present = false;
  };
  struct Slot {
    const WorkloadId* id = nullptr;  // the key in slot_of_
    double cpu_seconds = 0;
    double host_joules = 0;  // E_host's share, continued from the checkpoint
    double host_watts = 0;   // E_host's share over the last tick; 0 when it did not run
    int64_t last_seen_ms = 0;
    int64_t first_seen_ms = 0;  // of the run in progress; 0 before its first tick
    bool ended = false;         // the run ended; a next tick with CPU starts another
    bool used = false;
    /// The workload's labels for wattprobe_workload_cpu_seconds_total, built at its first
    /// export and shared by every snapshot after.
    mutable SeriesLabels cpu_labels;
  };
  /// A cell's energy and power labels, built once; `measured` is the pair's flag they carry, so
  /// a restored pair that a tick later shows measured or not gets fresh ones.
  struct CellLabels {
    SeriesLabels labels;
    int measured = -2;
  };
  /// Workload names are unique within a kind (a pod's name holds its namespace and container),
  /// so hashing those two is enough; equality still compares every field.
  struct SlotHash {
    std::size_t operator()(const WorkloadId& id) const noexcept {
      std::hash<std::string_view> h;
      return h(id.workload) ^ (h(id.kind) * 0x9e3779b97f4a7c15ULL);
    }
  };

  std::size_t pair_index(const std::string& source, const std::string& domain);
  std::size_t row_index(const DomainEnergy& row);
  uint32_t slot_for(const WorkloadId& id);
  void free_slot(uint32_t slot);
  /// The job records of the workloads the CPU accounting says ended in this tick.
  void end_runs(const std::vector<WorkloadId>& ended, EnergyTick& tick);
  /// Frees the longest idle slots past options_.max_workloads.
  void forget_beyond_cap();
  /// Makes room in every slot for the pairs interned so far.
  void widen_cells();
  Cell* cells_of(uint32_t slot) { return cells_.data() + slot * stride_; }
  const Cell* cells_of(uint32_t slot) const { return cells_.data() + slot * stride_; }

  AttributionOptions options_;
  std::vector<Pair> pairs_;
  std::map<std::pair<std::string, std::string>, std::size_t> pair_of_;
  std::vector<Row> rows_;
  std::map<std::tuple<std::string, std::string, int>, std::size_t> row_of_;
  std::vector<std::size_t> tick_rows_;  // this tick's energy.domains[r] → rows_ index
  std::vector<Slot> slots_;
  std::vector<Cell> cells_;  // slots_.size() × stride_, a slot's cells by pair index
  mutable std::vector<CellLabels> cell_labels_;  // laid out as cells_
  std::size_t stride_ = 0;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<WorkloadId, uint32_t, SlotHash> slot_of_;
  std::map<std::string, double> idle_total_;          // by domain
  std::map<std::string, double> unattributed_total_;  // by domain
  ProcessEnergy processes_;
  /// Per workload: GPU joules by {source, device, split method}, for
  /// wattprobe_workload_gpu_energy_*.
  std::unordered_map<WorkloadId, std::map<std::tuple<std::string, int, std::string>, double>,
                     WorkloadIdHash>
      gpu_split_joules_;
  /// The totals at a workload's last end, for those that ended and are still tracked: a run of
  /// the same name after it is its totals less these.
  struct RunBase {
    double cpu_seconds = 0;
    double host_joules = 0;
    std::vector<double> joules;  // by pair index
  };
  std::unordered_map<WorkloadId, RunBase, WorkloadIdHash> run_base_;
  uint64_t violations_ = 0;
  double platform_rest_watts_ = 0;  // the wall less its components, last tick
  double platform_shortfall_ = 0;   // J by which the wall read below its components
  /// E_host of the node (idle + workloads + unattributed of the host's non-overlapping set):
  /// its total, its power over the last tick, what it stood on and whether all of it was measured.
  double host_total_ = 0;
  double host_watts_ = 0;
  std::string host_basis_;
  bool host_measured_ = true;
  uint64_t records_lost_ = 0;
  uint64_t workloads_dropped_ = 0;
};

/// Whether `domain` is in the non-overlapping set summed for carbon (energy_tick.h): platform
/// meters if any, else psys, else package + dram + gpu.
std::vector<bool> host_sum_domains(const NodeEnergy& energy);

/// What E_host stands on in `energy`: "platform", "psys", "components" (package + dram + gpu),
/// or empty when there is none of them.
std::string host_basis(const NodeEnergy& energy);

}  // namespace wattprobe
