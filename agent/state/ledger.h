#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/snapshot.h"
#include "agent/carbon/carbon.h"
#include "agent/state/ledger_options.h"
#include "agent/tick/energy_tick.h"

namespace wattprobe {

/// The ledger's line format; a reader refuses lines of a newer version. Version 2 added the
/// `unit` lines (units a [unit.NAME] counted in the period); the other lines are unchanged and
/// still written as version 1 (kLedgerWorkloadLineVersion), so an older reader keeps summing
/// them and skips only the unit lines, naming them.
inline constexpr int kLedgerSchemaVersion = 2;
inline constexpr int kLedgerWorkloadLineVersion = 1;

/// Per-period totals, appended as JSON lines, one per workload plus one each for idle and
/// unattributed energy. This is what `wattprobe report` reads. `gpu_joules` is the part of
/// `joules` that GPUs used; it was added to version 1 without a new version, since a reader that
/// ignores it still sums every line right.
///
/// A tick is split between the periods it overlaps in proportion to its time in each, so a line
/// covers only time inside its period (a tick longer than kMaxSplitPeriods periods, after a
/// stall, goes whole to the period it ends in). A period is written at the first tick that ends
/// past it and, at stop, a partial period is written with the seconds it really covers. A period
/// may therefore have more than one line per workload (an agent restarted within it, a wall-clock
/// step back): readers sum lines, they never replace them.
///
/// Writes use O_APPEND, one write() per flushed period, then fsync. Bytes a failed write left
/// unwritten are kept and written before the next period's, so a torn line is completed rather
/// than duplicated. Runs on the sampling thread, after Carbon in each tick.
/// One ledger line read back: the reader beside the writer below (docs/ledger.md). A `unit` line
/// carries unit, units and its workload glob in `workload`; the others their figures.
struct LedgerLine {
  int64_t start_ms = 0;
  int64_t period_seconds = 0;
  bool measured = false;  // every source of the period was measured
  std::string type;       // workload, idle, unattributed or unit
  std::string workload, kind, namespace_;
  double covered_seconds = 0;
  double joules = 0;      // host energy, counted once
  double gpu_joules = 0;  // the part of joules GPUs used (0 on lines from before it existed)
  double cpu_seconds = 0;
  double operational_grams = 0;
  double embodied_grams = 0;
  double cfe_joules = 0;  // only lines written while a carbon-free share was in force
  double cfe_matched_joules = 0;
  std::string unit;
  double units = 0;
};

/// Reads one line strictly: the field and the value it found when something is wrong, and a
/// refusal of a schema newer than kLedgerSchemaVersion.
Result<LedgerLine> read_ledger_line(std::string_view text);

class Ledger {
 public:
  explicit Ledger(LedgerOptions options);
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  /// Creates the ledger folder and applies retention as of `now_ms`. Call once the agent runs as
  /// the user that will write, before the first tick.
  Result<bool> open(int64_t now_ms);

  /// One tick's joules and the grams carbon made of them (Carbon::on_tick's answer). Grams of
  /// another tick are refused, counted and logged: the line would mix two ticks.
  void on_tick(const EnergyTick& tick, const CarbonTickGrams& grams);
  void append_families(std::vector<Family>& out) const;
  /// The units of work this tick's families count (wattprobe_workload_functional_units_total,
  /// which the units sink adds): each series' rise since the last tick goes to the period
  /// `now_ms` falls in, as one `unit` line per unit and workload label.
  void count_units(const std::vector<Family>& families, int64_t now_ms);

  /// Writes every period still open, complete or not. At stop; idempotent.
  void flush_all();

  std::filesystem::path dir() const { return dir_; }
  uint64_t lines_written() const { return lines_written_; }
  uint64_t errors() const { return errors_; }
  uint64_t files_removed_for_size() const { return files_removed_for_size_; }
  uint64_t lines_dropped_for_size() const { return lines_dropped_for_size_; }

  static constexpr int64_t kMaxSplitPeriods = 120;

 private:
  struct Sums {
    double joules = 0;
    double gpu_joules = 0;  // the part of joules from gpu domains
    double cpu_seconds = 0;
    double operational = 0;
    double embodied = 0;
    double cfe_joules = 0;
    double cfe_matched_joules = 0;  // energy × PUE of the ticks with a carbon-free share
  };
  struct Period {
    double covered_seconds = 0;
    bool measured = true;
    std::unordered_map<WorkloadId, Sums, WorkloadIdHash> workloads;
    Sums idle;
    Sums unattributed;
    std::map<std::pair<std::string, std::string>, double> units;  // (unit, workload) → units
  };

  void add(int64_t period_index, const EnergyTick& tick, const CarbonTickGrams& grams,
           double fraction);
  void flush_before(int64_t period_index);
  void write_period(int64_t period_index, const Period& p);
  void write_pending();
  void apply_retention(int64_t today);
  /// Deletes the oldest closed day files while the day files, and `more` bytes about to be
  /// written, pass max_bytes; sets disk_bytes_.
  void apply_byte_cap(int64_t today, uint64_t more = 0);
  /// Whether `more` bytes fit under max_bytes, after deleting closed day files if need be.
  bool fits_byte_cap(std::size_t more);
  void fail(const std::string& what);

  LedgerOptions options_;
  std::filesystem::path dir_;
  int64_t period_ms_;
  std::map<int64_t, Period> open_;  // by period index (start / period)
  /// Bytes not yet on disk, by day file, in order.
  std::map<std::filesystem::path, std::string> pending_;
  std::optional<int64_t> retention_day_;
  uint64_t lines_written_ = 0;
  uint64_t errors_ = 0;
  uint64_t files_removed_for_size_ = 0;
  uint64_t lines_dropped_for_size_ = 0;
  uint64_t disk_bytes_ = 0;  // of the day files, as of the last listing plus our writes since
  std::optional<int64_t> cap_logged_day_;
  std::map<std::pair<std::string, std::string>, double> units_seen_;  // each series' last total
};

}  // namespace wattprobe
