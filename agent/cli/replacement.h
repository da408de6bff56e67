#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

/// `wattprobe report --replacement-embodied-kg KG --replacement-power-ratio R`: keep this device
/// one more year, or replace it (docs/methodology.md "Keep or replace").
struct ReplacementOptions {
  double new_embodied_kg = 0;  // the replacement's embodied carbon
  double power_ratio = 1;      // its energy for the same work, against this device's
  /// Both set: g/kWh = intensity × PUE instead of the ledger's own grams per kWh.
  std::optional<double> grid_intensity;
  double pue = 1;
  /// With --install-date: the current device's amortization ends at install + lifetime, so
  /// keeping it a year adds only the embodied grams still to amortize before then.
  std::optional<int64_t> install_ms;
  double lifetime_years = 4;
};

/// Takes the replacement flags out of `args`, leaving the ordinary report's. Nullopt when none
/// is given; an error naming the flag and the value for a bad or incomplete set (a usage
/// error to the caller).
Result<std::optional<ReplacementOptions>> take_replacement_options(std::vector<std::string>& args);

/// What the formula reads from the ledger over the report's period (report.h's LedgerSums,
/// summed over every group, idle and unattributed).
struct LedgerTotals {
  int64_t since_ms = 0, until_ms = 0;
  double joules = 0;
  double operational_grams = 0;
  double embodied_grams = 0;
  double covered_seconds = 0;
};

std::string replacement_help();

struct ReplacementResult {
  double covered_seconds = 0;
  double ledger_kwh = 0;
  double kwh_per_year = 0;
  double grams_per_kwh = 0;
  std::string grams_per_kwh_from;
  double embodied_grams_per_second = 0;  // the current device's amortization in the ledger
  std::optional<double> amortization_left_seconds;
  double keep_operational_grams = 0;
  double keep_embodied_grams = 0;
  double replace_embodied_grams = 0;
  double replace_operational_grams = 0;
  /// new embodied / (operational a year × (1 − R)); none when the replacement saves nothing.
  std::optional<double> break_even_years;

  double keep_grams() const { return keep_operational_grams + keep_embodied_grams; }
  double replace_grams() const { return replace_embodied_grams + replace_operational_grams; }
};

/// From the ledger's sums over the report's period. An error when the ledger covers no time or
/// holds no energy: nothing can be scaled to a year.
Result<ReplacementResult> compute_replacement(const ReplacementOptions& options,
                                              const LedgerTotals& ledger, int64_t now_ms);

void print_replacement(const ReplacementOptions& options, const LedgerTotals& ledger,
                       const ReplacementResult& result, std::ostream& out);

}  // namespace wattprobe
