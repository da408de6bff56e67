#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace wattprobe {

/// One group's figures over one period, each the sum over the fleet's series of that group.
struct PeriodFigures {
  double operational_grams = 0;
  double embodied_grams = 0;
  double energy_joules = 0;
  /// The energy of the non-overlapping component domains, and its part from measured sources:
  /// the measured share is their ratio (the host-energy family carries no provenance).
  double component_joules = 0;
  double measured_joules = 0;
  double cpu_seconds = 0;
  std::map<std::string, double> units;  // functional units by unit name
  /// Only some of the groups summed here count units: their units cannot stand for all the
  /// grams, so grams per unit of work is per CPU-hour.
  bool partial_units = false;

  double grams() const { return operational_grams + embodied_grams; }
  /// Operational grams per kWh of the group's energy (PUE included); 0 without energy.
  double intensity_g_per_kwh() const;
  std::optional<double> measured_share() const;
  /// Grams (operational + embodied) per unit of work: per functional unit when the group has
  /// units, else per CPU-hour under the key "cpu_hour".
  std::map<std::string, double> grams_per_unit() const;
  void add(const PeriodFigures& other);
};

/// Δgrams = ΔE × I_before + E_after × ΔI + Δembodied, with I = operational grams / energy.
/// The intensity term is computed as the operational change less the energy term, so the
/// three add up to the change exactly (it equals E_after × ΔI whenever both energies are
/// non-zero; a group new in the period has I_before = 0 and all its grams in that term).
struct Decomposition {
  double change_grams = 0;
  std::optional<double> change_percent;  // none when the period before had no grams
  double energy_term = 0;
  double intensity_term = 0;
  double embodied_term = 0;
};

Decomposition decompose(const PeriodFigures& before, const PeriodFigures& after);

struct GroupFigures {
  std::string group;
  PeriodFigures current, previous;
  Decomposition change;
  /// Why a figure is a lower bound (a host of this group stopped reporting in the period, a
  /// partial answer); empty when whole.
  std::vector<std::string> lower_bound;
};

/// The groups that changed most: by absolute grams, and by absolute percent (groups new in
/// the period have no percent and are left out of that list). At most `n` each.
std::vector<std::string> drivers_by_grams(const std::vector<GroupFigures>& groups, std::size_t n);
std::vector<std::string> drivers_by_percent(const std::vector<GroupFigures>& groups, std::size_t n);

struct BudgetUse {
  std::string workload, kind, window;
  double budget_grams = 0;       // per window, summed over the hosts that configure it
  double allowance_grams = 0;    // the budget scaled to the period's length
  double used_grams = 0;         // operational + embodied grams of the workload in the period
  double peak_window_grams = 0;  // the agent's highest window consumption seen in the period
  double use_ratio() const { return allowance_grams > 0 ? used_grams / allowance_grams : 0; }
};

/// One finding about a host's hardware or data: the host (the `instance` label), what it is
/// about (a battery, a drive, a source) and its figure.
struct HostFinding {
  std::string host;
  std::string item;
  double value = 0;
  std::string note;
};

struct KeepOrReplace {
  std::string host;
  double keep_grams = 0;     // one more year: its operational grams a year (+ embodied left)
  double replace_grams = 0;  // the new device's embodied + its operational a year
  std::string answer;        // "keep" or "replace"
};

struct Hardware {
  std::vector<HostFinding> past_amortization;  // value: amortized ratio; note: age in years
  std::vector<HostFinding> batteries_worn;     // value: capacity ratio < 0.8
  std::vector<HostFinding> drives_worn;        // value: wear ratio > 0.8
  std::vector<HostFinding> throttled;          // value: throttle events in the period
  std::vector<KeepOrReplace> keep_or_replace;
  std::string keep_or_replace_inputs;  // what is missing when no answer is given
};

struct StoppedHost {
  std::string host;
  int64_t last_seen_ms = 0;
  double gap_seconds = 0;  // from the last sample to the period's end
  bool previous = false;   // found in the period before
};

/// A host silent for a stretch inside the period that reported again before its end (a stop
/// that lasted to the end is a StoppedHost).
struct SilentHost {
  std::string host;
  double silent_seconds = 0;  // all its silent stretches of over kSilentWindowSeconds, ±1 h
  bool previous = false;      // found in the period before
};

/// A host counts as silent once no sample of it arrived for this long: long against any scrape
/// interval (and the 2-hour samples a backfill may have), short against a month.
inline constexpr int kSilentWindowSeconds = 3 * 3600;

struct DataQuality {
  std::vector<StoppedHost> stopped;
  std::vector<SilentHost> silent;
  std::vector<HostFinding> stalled;       // item: source/domain
  std::vector<HostFinding> unattributed;  // value: share of the host's energy, over 5 %
  double fleet_unattributed_share = 0;
};

struct QueryRecord {
  std::string figure;  // e.g. "operational_grams/current"
  std::string promql;
  int64_t time_ms = 0;
  std::size_t series = 0;
  std::vector<std::string> warnings;  // non-empty: partial answer
};

struct Scorecard {
  std::string by;
  std::string period_name;  // "2026-11" or "<since> to <until>"
  int64_t start_ms = 0, end_ms = 0, previous_start_ms = 0, previous_end_ms = 0;
  std::string energy_basis;          // what the energy figures sum
  std::string intensity_basis;       // "functional units" or "CPU-hours"
  std::vector<GroupFigures> groups;  // most grams in the period first
  GroupFigures total;
  std::vector<BudgetUse> budgets;
  Hardware hardware;
  DataQuality quality;
  std::vector<QueryRecord> queries;

  bool partial() const;
};

/// Fills every group's change and the total (the sum of the groups, its own decomposition,
/// lower-bound reasons gathered), and orders the groups by grams in the period.
void finish_scorecard(Scorecard& card);

}  // namespace wattprobe
