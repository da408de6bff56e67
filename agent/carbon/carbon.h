#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "agent/base/snapshot.h"
#include "agent/base/workload_id.h"
#include "agent/carbon/best_window.h"
#include "agent/carbon/embodied.h"
#include "agent/carbon/grid/intensity.h"
#include "agent/carbon/intensity_history.h"
#include "agent/tick/energy_tick.h"

namespace wattprobe {

/// A carbon error budget: grams of CO2e (operational + embodied) per window for one workload or
/// for every workload of a kind.
struct CarbonBudget {
  std::string workload;  // exactly one of workload and kind is set
  std::string kind;
  double grams = 0;
  enum class Window { day, days30 } window = Window::day;
};

/// "TARGET=GRAMS/WINDOW": TARGET a workload name or "kind:<kind>", WINDOW "day" or "30d".
/// e.g. "nginx.service=500/day", "kind:pod=20000/30d".
Result<CarbonBudget> parse_budget(std::string_view text);

/// The forecast a provider's last good reading offers at `now_ms`, or why it offers none: the
/// one rule the API, its gauges and `wattprobe when` share.
/// - A schedule (the file provider) needs a point after now, and its point in force must have
///   begun within `max_age_ms`.
/// - A fetched forecast must have been fetched within `max_age_ms` and reach past now.
/// Points then hold until the next; the last for the spacing before it.
ForecastAnswer usable_forecast(const std::optional<IntensityReading>& reading, int64_t fetched_ms,
                               int64_t now_ms, int64_t max_age_ms, std::string_view provider);

/// A window size the best-window gauges are kept for (--best-window 1h,4h): its label as given.
struct BestWindowSize {
  std::string label;
  int64_t ms = 0;
};

struct CarbonOptions {
  /// A name in the grid provider table (agent/carbon/grid/registry.cc).
  std::string grid_provider = "static";
  /// g/kWh for `static` and the last link of every fallback chain. 475 is the world average
  /// CodeCarbon applies to an unknown grid (codecarbon docs/explanation/methodology.md): a
  /// neutral, cited default for a host that has not said where it is.
  double grid_intensity = 475;
  std::string zone;  // Electricity Maps zone, WattTime region; a label for static/file
  std::string grid_file;
  std::string grid_url;  // the provider's base URL; empty: its public API (the table's default)
  /// The API key (Electricity Maps token, WattTime password): from this file, else from the
  /// environment variable named here. Never logged, exported or shown by doctor.
  std::string token_file;
  std::string token_env = "WATTPROBE_GRID_TOKEN";
  std::string watttime_username;
  std::string ca_file;  // extra CA bundle; TLS verification stays on
  /// How often the provider is asked; unset: the provider's default (15 min for the APIs, 10 s
  /// for the file provider). Seconds are allowed for tests and local schedules.
  std::optional<double> refresh_seconds;
  double connect_timeout_seconds = 5;
  double timeout_seconds = 20;
  double max_age_seconds = 86400;   // last good value older than this → static default
  double min_backoff_seconds = 10;  // capped by the refresh: a retry never waits past it
  /// Power usage effectiveness of the facility. 1.0 (no overhead) is the default because the
  /// agent cannot know the building; set it for a data centre (AWS 1.135, GCP 1.1, Azure 1.185).
  double pue = 1.0;
  std::optional<double> embodied_kg;  // replaces the inventory model
  /// GPUs the GPU energy sources list (nvml today), set by the wiring when one runs
  /// (DeviceInventory::listed_gpus).
  std::optional<int> listed_gpus;
  std::string install_date;  // YYYY-MM-DD; empty = unknown
  /// 4 years: the lifespan of CCF's model (from the R740 LCA) and of the SCI specification's
  /// example, so figures line up with both.
  double lifetime_years = 4;
  EmbodiedTable embodied_table;
  std::vector<CarbonBudget> budgets;
  /// A workload's grams leave /metrics and the checkpoint with its energy series: once it has
  /// not run for this long (--workload-expiry), or, past --max-workloads tracked, the longest
  /// idle first. The ledger keeps their history.
  std::chrono::milliseconds workload_expiry{std::chrono::minutes(5)};
  std::size_t max_workloads = 5000;
  /// wattprobe_grid_best_window_* gauges for these sizes; none by default.
  std::vector<BestWindowSize> best_windows;
};

/// A message naming the field and its value, or nullopt when the options are usable. What each
/// grid provider needs is checked by validate_grid (agent/carbon/grid/registry.h).
Result<bool> validate(const CarbonOptions& options);

/// --pue, --best-window, the embodied carbon and --carbon-budget; the grid's options are the
/// provider table's (grid_option_table).
OptionTable<CarbonOptions> carbon_option_table();

/// What the grid provider table says of the provider a Carbon is given.
struct GridCadence {
  bool live = true;  // false: a value that never changes (no refresh thread, no age)
  double default_refresh_seconds = 900;
};

struct CarbonGrams {
  double operational = 0;
  double embodied = 0;
  /// Carbon-free energy (24/7 CFE): the energy × PUE the operational grams come from, × the
  /// grid's carbon-free share in force; nothing while no share is published. Joules, kept with
  /// the grams because it is made from the same energy at the same tick.
  double cfe_joules = 0;
};

/// Cumulative grams, the shape the ledger checkpoints and restores.
struct CarbonTotals {
  std::unordered_map<WorkloadId, CarbonGrams, WorkloadIdHash> workloads;
  /// Wall clock of each workload's last tick (the keys of `workloads`); one missing counts from
  /// the next tick.
  std::unordered_map<WorkloadId, int64_t, WorkloadIdHash> last_seen_ms;
  CarbonGrams idle;
  double unattributed_operational = 0;
  double unattributed_cfe_joules = 0;
};

/// The grams one tick added: what the ledger sums per period, taken from here rather than as
/// differences of the cumulative totals, which would lose digits once totals are large and
/// would jump when a checkpoint restores the totals.
struct CarbonTickGrams {
  int64_t end_ms = 0;                  // the tick's, so a reader can tell it is the same tick
  std::vector<CarbonGrams> workloads;  // parallel to the tick's EnergyTick::workloads
  CarbonGrams idle;
  double unattributed_operational = 0;
  double unattributed_cfe_joules = 0;
  /// The PUE of the tick when a carbon-free share was in force, else 0: energy × this is the
  /// energy the tick's CFE joules are a share of, so a report can match them hour by hour.
  double cfe_matched_pue = 0;
};

/// Operational and embodied CO2e per workload, grid intensity and device longevity.
/// on_tick, append_families, totals and restore belong to the sampling thread; the grid refresh
/// thread only updates the intensity (under GridIntensity's mutex), so on_tick never waits on
/// the network.
class Carbon {
 public:
  /// The provider the options name comes from make_carbon (agent/carbon/grid/registry.h); tests
  /// hand their own.
  Carbon(HostPaths paths, CarbonOptions options, std::unique_ptr<GridProvider> provider,
         GridCadence cadence = {});
  ~Carbon();

  /// Starts the grid refresh (see GridIntensity::start); `log` receives its one-line events.
  void start(std::function<void(const std::string&)> log = {});
  void stop();
  /// Adds the tick's grams to the totals and returns them, for the stages after carbon (the
  /// ledger): valid until the next call.
  const CarbonTickGrams& on_tick(const EnergyTick& tick);
  void append_families(std::vector<Family>& out) const;
  /// The grams of the ended workloads' runs (EnergyTick::ended, after on_tick of that tick):
  /// their totals less those at their previous end, if the name ran and ended before.
  void add_run_grams(std::vector<EndedWorkload>& ended);
  /// After restore(): `id`'s run had ended before the checkpoint, so a next run's grams count
  /// from its totals now.
  void restore_ended_run(const WorkloadId& id);
  std::string doctor_report() const;

  const CarbonTotals& totals() const { return totals_; }
  /// Continues totals from a checkpoint; workloads past the expiry leave at the next tick.
  void restore(CarbonTotals totals);

  GridIntensity& grid() { return *grid_; }
  /// The forecast the carbon-aware API may use at `now_ms`, or why none. Thread-safe.
  ForecastAnswer forecast_at(int64_t now_ms) const;
  /// The intensities used, tick by tick (thread-safe itself).
  const IntensityHistory& history() const { return history_; }
  const DeviceInventory& inventory() const { return inventory_; }
  const EmbodiedBreakdown& embodied() const { return embodied_; }
  Longevity longevity_at(int64_t now_ms) const;

  struct BudgetState {
    CarbonBudget budget;
    std::array<double, 30> day_grams{};  // ring of UTC days, index day % 30
    int64_t last_day = -1;
    double consumption() const;  // today, or the last 30 UTC days
  };
  const std::vector<BudgetState>& budgets() const { return budgets_; }
  /// Continues budget consumption from a checkpoint. A saved state goes to the configured budget
  /// with the same target and window (its gram limit may have changed since); saved states of
  /// budgets no longer configured are dropped, and new budgets start empty.
  void restore_budgets(const std::vector<BudgetState>& saved);

 private:
  void charge_budgets(const WorkloadId& id, double grams, int64_t day);
  /// Drops the workloads gone past the expiry, then the longest idle past max_workloads.
  void forget_workloads(int64_t now_ms);
  void forget_run_bases();
  void append_best_windows(std::vector<Family>& out, int64_t now_ms) const;

  HostPaths paths_;
  CarbonOptions options_;
  std::optional<int64_t> install_ms_;
  DeviceInventory inventory_;
  EmbodiedBreakdown embodied_;
  std::unique_ptr<GridIntensity> grid_;
  CarbonTotals totals_;
  CarbonTickGrams last_tick_grams_;
  /// Grams at a workload's last end, while its totals are kept (add_run_grams).
  std::unordered_map<WorkloadId, CarbonGrams, WorkloadIdHash> run_base_;
  std::vector<BudgetState> budgets_;
  int64_t last_tick_ms_ = 0;
  IntensityHistory history_;
  /// Whether a carbon-free share was ever in force (or restored totals hold CFE energy): the
  /// CFE families are exported only then, never as zeros from a provider that publishes none.
  bool cfe_seen_ = false;
};

}  // namespace wattprobe
