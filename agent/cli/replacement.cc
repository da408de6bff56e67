#include "agent/cli/replacement.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <ostream>

#include "agent/base/utc_time.h"
#include "agent/carbon/embodied.h"

namespace wattprobe {

namespace {

constexpr double kJoulesPerKwh = 3.6e6;

const char* const kFlags[] = {
    "replacement-embodied-kg", "replacement-power-ratio", "grid-intensity", "pue", "install-date",
    "lifetime-years"};

/// Thrown inside take_replacement_options only, and returned from it as an error.
struct Refused {
  std::string why;
};

[[noreturn]] void refuse(std::string why) { throw Refused{std::move(why)}; }

[[noreturn]] void bad(const std::string& flag, const std::string& value, const std::string& why) {
  refuse("invalid value \"" + value + "\" for --" + flag + ": " + why);
}

double number(const std::string& flag, const std::string& value, double lo, double hi) {
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(value, &used);
  } catch (const std::exception&) {
    bad(flag, value, "expected a number");
  }
  if (used != value.size() || !std::isfinite(d)) bad(flag, value, "expected a number");
  if (d < lo || d > hi) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "expected %g to %g", lo, hi);
    bad(flag, value, buf);
  }
  return d;
}

std::string g(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::optional<ReplacementOptions> take(std::vector<std::string>& args) {
  std::map<std::string, std::string> given;
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string name = a.rfind("--", 0) == 0 ? a.substr(2) : std::string();
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    if (std::find(std::begin(kFlags), std::end(kFlags), name) == std::end(kFlags)) {
      rest.push_back(a);
      // The ordinary report's value words stay with their flag (a value may start with '-').
      if (a.rfind("--", 0) == 0 && a.find('=') == std::string::npos && i + 1 < args.size()) {
        rest.push_back(args[++i]);
      }
      continue;
    }
    if (!value) {
      if (i + 1 == args.size()) refuse("--" + name + " needs a value");
      value = args[++i];
    }
    if (!given.emplace(name, *value).second) refuse("--" + name + " given twice");
  }
  if (given.empty()) return std::nullopt;
  if (!given.count("replacement-embodied-kg") || !given.count("replacement-power-ratio")) {
    refuse(
        "--replacement-embodied-kg and --replacement-power-ratio must be given together (and "
        "--grid-intensity, --pue, --install-date, --lifetime-years only with them)");
  }
  ReplacementOptions o;
  o.new_embodied_kg = number("replacement-embodied-kg", given["replacement-embodied-kg"], 0, 1e6);
  // Above 0: a device that uses no energy is no replacement the formula can weigh.
  o.power_ratio = number("replacement-power-ratio", given["replacement-power-ratio"], 0.001, 100);
  if (given.count("pue") && !given.count("grid-intensity")) {
    bad("pue", given["pue"],
        "needs --grid-intensity: without them the ledger's own grams per kWh (intensity x PUE "
        "as the agent applied them) are used");
  }
  if (given.count("grid-intensity")) {
    o.grid_intensity = number("grid-intensity", given["grid-intensity"], 0, 5000);
  }
  if (given.count("pue")) o.pue = number("pue", given["pue"], 1.0, 3.0);
  if (given.count("install-date")) {
    o.install_ms = parse_install_date(given["install-date"]);
    if (!o.install_ms) bad("install-date", given["install-date"], "expected YYYY-MM-DD");
  }
  if (given.count("lifetime-years")) {
    o.lifetime_years = number("lifetime-years", given["lifetime-years"], 0.1, 50);
  }
  args = std::move(rest);
  return o;
}

}  // namespace

Result<std::optional<ReplacementOptions>> take_replacement_options(std::vector<std::string>& args) {
  try {
    return take(args);
  } catch (const Refused& r) {
    return Error{ErrorKind::malformed, "", r.why};
  }
}

std::string replacement_help() {
  return "\nKeep or replace (docs/methodology.md):\n"
         "  --replacement-embodied-kg KG  embodied kgCO2e of the device that would replace this "
         "one\n"
         "  --replacement-power-ratio R   its energy for the same work, against this device's "
         "(0.6: 40 % less)\n"
         "  --grid-intensity G --pue P    g/kWh x PUE to use (default: the ledger's own grams per "
         "kWh)\n"
         "  --install-date YYYY-MM-DD --lifetime-years N\n"
         "                                when this device's amortization ends (default: it "
         "goes on the whole year)\n";
}

Result<ReplacementResult> compute_replacement(const ReplacementOptions& o,
                                              const LedgerTotals& total, int64_t now_ms) {
  if (total.covered_seconds <= 0 || total.joules <= 0) {
    return Error{ErrorKind::absent, "",
                 "the ledger's period holds no measured time or energy to scale to a year"};
  }
  ReplacementResult r;
  r.covered_seconds = total.covered_seconds;
  r.ledger_kwh = total.joules / kJoulesPerKwh;
  r.kwh_per_year = r.ledger_kwh / total.covered_seconds * kSecondsPerYear;
  if (o.grid_intensity) {
    r.grams_per_kwh = *o.grid_intensity * o.pue;
    r.grams_per_kwh_from = "--grid-intensity " + g(*o.grid_intensity) + " x --pue " + g(o.pue);
  } else {
    r.grams_per_kwh = total.operational_grams / r.ledger_kwh;
    r.grams_per_kwh_from =
        "the ledger's operational grams / its kWh: grid intensity x PUE as the agent applied them";
  }
  r.embodied_grams_per_second = total.embodied_grams / total.covered_seconds;
  double embodied_seconds = kSecondsPerYear;
  if (o.install_ms) {
    const double end_ms =
        static_cast<double>(*o.install_ms) + o.lifetime_years * kSecondsPerYear * 1000;
    r.amortization_left_seconds = std::max(0.0, (end_ms - static_cast<double>(now_ms)) / 1000);
    embodied_seconds = std::min(embodied_seconds, *r.amortization_left_seconds);
  }
  r.keep_operational_grams = r.kwh_per_year * r.grams_per_kwh;
  r.keep_embodied_grams = r.embodied_grams_per_second * embodied_seconds;
  r.replace_embodied_grams = o.new_embodied_kg * 1000;
  r.replace_operational_grams = o.power_ratio * r.keep_operational_grams;
  const double saved_per_year = r.keep_operational_grams - r.replace_operational_grams;
  if (saved_per_year > 0) r.break_even_years = r.replace_embodied_grams / saved_per_year;
  return r;
}

void print_replacement(const ReplacementOptions& o, const LedgerTotals& period,
                       const ReplacementResult& r, std::ostream& out) {
  out << "Keep or replace, from the ledger " << format_utc_instant(period.since_ms) << " to "
      << format_utc_instant(period.until_ms) << "\n"
      << "inputs:\n"
      << "  ledger energy:            " << g(r.ledger_kwh) << " kWh over " << g(r.covered_seconds)
      << " s covered\n"
      << "  energy a year:            " << g(r.kwh_per_year) << " kWh (ledger energy / covered "
      << "time x 365.25 days)\n"
      << "  grams per kWh:            " << g(r.grams_per_kwh) << " (" << r.grams_per_kwh_from
      << ")\n"
      << "  embodied amortized:       " << g(r.embodied_grams_per_second * 3600)
      << " g/h in the ledger"
      << (r.embodied_grams_per_second == 0 ? " (0: this device is fully amortized)" : "") << "\n";
  if (r.amortization_left_seconds) {
    out << "  amortization left:        " << g(*r.amortization_left_seconds / kSecondsPerYear)
        << " years (--install-date, --lifetime-years " << g(o.lifetime_years) << ")\n";
  }
  out << "  replacement embodied:     " << g(o.new_embodied_kg)
      << " kg (--replacement-embodied-kg)\n"
      << "  replacement power ratio:  " << g(o.power_ratio) << " (--replacement-power-ratio)\n"
      << "results (kgCO2e):\n"
      << "  keep one more year:       " << g(r.keep_grams() / 1000) << " = operational "
      << g(r.keep_operational_grams / 1000) << " + embodied " << g(r.keep_embodied_grams / 1000)
      << "\n"
      << "  replace (first year):     " << g(r.replace_grams() / 1000) << " = embodied "
      << g(r.replace_embodied_grams / 1000) << " + operational "
      << g(r.replace_operational_grams / 1000) << "\n"
      << "  break-even:               ";
  if (r.break_even_years) {
    out << g(*r.break_even_years) << " years (replacement embodied / operational saved a year)\n";
  } else {
    out << "never (the replacement saves no operational carbon at ratio " << g(o.power_ratio)
        << ")\n";
  }
}

}  // namespace wattprobe
