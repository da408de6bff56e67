#include "agent/cli/report.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "agent/base/duration.h"
#include "agent/base/flag_args.h"
#include "agent/base/option_table.h"
#include "agent/base/text_file.h"
#include "agent/base/usage_error.h"
#include "agent/base/utc_time.h"
#include "agent/carbon/grid/intensity.h"
#include "agent/cli/job_report.h"
#include "agent/cli/replacement.h"
#include "agent/state/ledger.h"

namespace wattprobe {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;
/// More malformed lines than this are counted but not each named: a file of garbage must not
/// bury the report.
constexpr uint64_t kMaxNamedLines = 50;

const std::vector<Choice<ReportOptions::GroupBy>>& group_by_words() {
  using G = ReportOptions::GroupBy;
  static const std::vector<Choice<G>> words{
      {"workload", G::workload}, {"kind", G::kind}, {"namespace", G::namespace_}};
  return words;
}

std::string_view by_name(ReportOptions::GroupBy by) { return word_of(group_by_words(), by); }

/// Shortest text that reads back as the same double.
std::string exact(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

/// About four significant digits in at most `width` characters, for the table.
std::string fit(double v, int width) {
  char buf[64];
  if (v == 0) return "0";
  int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  // Below a thousandth, decimals would hide the digits that matter: 4.88e-07, not 0.000000.
  if (3 - magnitude > 6) {
    std::snprintf(buf, sizeof buf, "%.2e", v);
    return buf;
  }
  for (int decimals = std::max(3 - magnitude, 0); decimals >= 0; --decimals) {
    int n = std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    if (n <= width) return buf;
  }
  std::snprintf(buf, sizeof buf, "%.*e", std::max(0, width - 7), v);
  return buf;
}

std::optional<double> per_kwh(const ReportRow& r) {
  if (r.joules <= 0) return std::nullopt;
  return r.operational_grams / (r.joules / kJoulesPerKwh);
}

/// The time-matched CFE score: carbon-free energy over the energy it was matched against.
std::optional<double> cfe_score(const ReportRow& r) {
  if (r.cfe_matched_joules <= 0) return std::nullopt;
  return std::clamp(r.cfe_joules / r.cfe_matched_joules, 0.0, 1.0);
}

std::optional<double> measured_share(const ReportRow& r) {
  if (r.joules <= 0) return std::nullopt;
  return std::clamp(r.measured_joules / r.joules, 0.0, 1.0);
}

/// What is wrong with one ledger line, or the line's contribution.
struct ParsedLine {
  int64_t start_ms = 0;
  std::string type;
  std::string group_key[3];  // workload, kind, namespace
  ReportRow row;
  double covered_seconds = 0;
  std::string unit;  // a `unit` line's unit and the units it counted
  double units = 0;
};

Result<ParsedLine> parse_line(const std::string& text) {
  auto line = read_ledger_line(text);
  if (!line) return line.error();
  ParsedLine out;
  out.start_ms = line->start_ms;
  out.type = line->type;
  out.group_key[0] = line->workload;
  out.group_key[1] = line->kind;
  out.group_key[2] = line->namespace_;
  out.unit = line->unit;
  out.units = line->units;
  out.covered_seconds = line->covered_seconds;
  ReportRow& r = out.row;
  r.joules = line->joules;
  r.gpu_joules = line->gpu_joules;
  r.cpu_seconds = line->cpu_seconds;
  r.operational_grams = line->operational_grams;
  r.embodied_grams = line->embodied_grams;
  r.cfe_joules = line->cfe_joules;
  r.cfe_matched_joules = line->cfe_matched_joules;
  if (line->measured) r.measured_joules = line->joules;
  return out;
}

void write_row_json(nlohmann::ordered_json& j, const ReportRow& r) {
  j["energy_joules"] = r.joules;
  j["energy_kwh"] = r.joules / kJoulesPerKwh;
  j["gpu_energy_joules"] = r.gpu_joules;
  j["cpu_seconds"] = r.cpu_seconds;
  j["operational_co2e_grams"] = r.operational_grams;
  j["embodied_co2e_grams"] = r.embodied_grams;
  auto g = per_kwh(r);
  j["operational_grams_per_kwh"] = g ? nlohmann::ordered_json(*g) : nlohmann::ordered_json();
  auto m = measured_share(r);
  j["measured_share"] = m ? nlohmann::ordered_json(*m) : nlohmann::ordered_json();
  j["cfe_energy_joules"] = r.cfe_joules;
  auto c = cfe_score(r);
  j["cfe_score"] = c ? nlohmann::ordered_json(*c) : nlohmann::ordered_json();
}

// SCI = (E × I + M) / R. E × I is the ledger's operational grams (each tick's energy × PUE ×
// the intensity then in force), so the I shown is the one the row achieved: E × I ÷ E.
double sci(const ReportRow& r, double units) {
  return (r.operational_grams + r.embodied_grams) / units;
}

void write_sci_json(nlohmann::ordered_json& j, const ReportRow& r, double units) {
  auto g = per_kwh(r);
  j["sci"] = {{"grams_per_unit", sci(r, units)},
              {"E_kwh", r.joules / kJoulesPerKwh},
              {"I_grams_per_kwh", g ? nlohmann::ordered_json(*g) : nlohmann::ordered_json()},
              {"E_times_I_grams", r.operational_grams},
              {"M_grams", r.embodied_grams},
              {"R", units}};
}

void print_sci_table(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  const double units = *o.functional_units;
  const std::string& name = o.functional_unit_name;
  out << "\nSCI (ISO/IEC 21031) = (E x I + M) / R, R = " << exact(units) << " " << name
      << " in the period\n"
      << "E: kWh used; I: gCO2e/kWh achieved (the grid intensity at each tick x PUE);\n"
      << "M: embodied gCO2e amortised over the period. SCI: gCO2e per " << name << "\n\n";
  char line[256];
  constexpr int kName = 26;
  std::snprintf(line, sizeof line, "%-*s %12s %9s %10s %16s\n", kName,
                std::string(by_name(o.by)).c_str(), "E kWh", "I g/kWh", "M gCO2e",
                ("g/" + name).substr(0, 16).c_str());
  out << line;
  auto row = [&](const std::string& label, const ReportRow& r) {
    std::string shown = label.empty() ? "-" : label;
    if (static_cast<int>(shown.size()) > kName) {
      out << shown << '\n';
      shown.clear();
    }
    auto g = per_kwh(r);
    std::snprintf(line, sizeof line, "%-*s %12s %9s %10s %16s\n", kName, shown.c_str(),
                  fit(r.joules / kJoulesPerKwh, 12).c_str(), g ? fit(*g, 9).c_str() : "-",
                  fit(r.embodied_grams, 10).c_str(), fit(sci(r, units), 16).c_str());
    out << line;
  };
  for (const ReportRow& r : s.groups) row(r.group, r);
  std::string rule(76, '-');
  out << rule << '\n';
  row("(idle)", s.idle);
  row("(unattributed)", s.unattributed);
  out << rule << '\n';
  row("total", s.total());
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void print_csv(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  out << "row," << by_name(o.by)
      << ",energy_joules,energy_kwh,cpu_seconds,operational_co2e_grams,embodied_co2e_grams,"
         "operational_grams_per_kwh,measured_share,gpu_energy_joules,cfe_energy_joules,cfe_score"
      << (o.functional_units ? ",sci_grams_per_functional_unit" : "") << "\n";
  // New columns go after the older ones (the SCI column, when asked for, stays last), so scripts
  // that read the older columns by position still work.
  auto row = [&](std::string_view kind, const std::string& group, const ReportRow& r) {
    auto g = per_kwh(r);
    auto m = measured_share(r);
    out << kind << ',' << csv_field(group) << ',' << exact(r.joules) << ','
        << exact(r.joules / kJoulesPerKwh) << ',' << exact(r.cpu_seconds) << ','
        << exact(r.operational_grams) << ',' << exact(r.embodied_grams) << ','
        << (g ? exact(*g) : "") << ',' << (m ? exact(*m) : "") << ',' << exact(r.gpu_joules);
    auto c = cfe_score(r);
    out << ',' << exact(r.cfe_joules) << ',' << (c ? exact(*c) : "");
    if (o.functional_units) out << ',' << exact(sci(r, *o.functional_units));
    out << '\n';
  };
  for (const ReportRow& r : s.groups) row("group", r.group, r);
  row("idle", "", s.idle);
  row("unattributed", "", s.unattributed);
  row("total", "", s.total());
}

void print_json(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  nlohmann::ordered_json j;
  j["period"]["since"] = format_utc_instant(o.since_ms);
  j["period"]["until"] = format_utc_instant(o.until_ms);
  j["period"]["covered_seconds"] = s.covered_seconds;
  j["period"]["lines"] = s.lines;
  j["period"]["skipped_lines"] = s.skipped;
  j["period"]["files"] = nlohmann::ordered_json::array();
  for (const auto& f : s.files) j["period"]["files"].push_back(f.string());
  j["by"] = by_name(o.by);
  j["groups"] = nlohmann::ordered_json::array();
  for (const ReportRow& r : s.groups) {
    nlohmann::ordered_json g;
    g["group"] = r.group;
    write_row_json(g, r);
    if (o.functional_units) write_sci_json(g, r, *o.functional_units);
    j["groups"].push_back(std::move(g));
  }
  write_row_json(j["node"]["idle"], s.idle);
  write_row_json(j["node"]["unattributed"], s.unattributed);
  write_row_json(j["totals"], s.total());
  if (o.functional_units) {
    write_sci_json(j["node"]["idle"], s.idle, *o.functional_units);
    write_sci_json(j["node"]["unattributed"], s.unattributed, *o.functional_units);
    write_sci_json(j["totals"], s.total(), *o.functional_units);
    j["sci"] = {{"standard", "ISO/IEC 21031:2024 (Green Software Foundation SCI)"},
                {"formula", "(E * I + M) / R"},
                {"R", *o.functional_units},
                {"functional_unit", o.functional_unit_name},
                {"E",
                 "energy the ledger holds for the row, kWh (measured_share says how much "
                 "was measured)"},
                {"I",
                 "operational gCO2e per kWh the row achieved: the grid intensity in force "
                 "at each tick times PUE (location-based; market-based instruments are "
                 "not used)"},
                {"M",
                 "embodied gCO2e of the host amortised linearly over its lifetime, the "
                 "row's share for the period"}};
  }
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

/// 24/7 CFE, time-matched with the grid mix: only where the provider published a share.
void print_cfe_table(const LedgerSums& s, std::ostream& out) {
  out << "\n24/7 CFE score (carbon-free energy / energy x PUE, matched tick by tick with the "
         "grid's\ncarbon-free share; not contracted supply)\n";
  auto row = [&](const std::string& name, const ReportRow& r) {
    auto c = cfe_score(r);
    char line[160];
    std::snprintf(line, sizeof line, "%-40s %12s J CFE  %7s\n", name.empty() ? "-" : name.c_str(),
                  fit(r.cfe_joules, 12).c_str(), c ? (fit(*c * 100, 5) + "%").c_str() : "-");
    out << line;
  };
  for (const ReportRow& r : s.groups) row(r.group, r);
  row("(idle)", s.idle);
  row("(unattributed)", s.unattributed);
  row("total", s.total());
}

void print_table(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  // 79 columns: a name column and seven figures. A longer name gets a line of its own. The GPU's
  // joules take the place kWh had (kWh is energy J / 3.6e6, and CSV and JSON still carry it).
  constexpr int kName = 16;
  constexpr int kWidths[] = {10, 9, 9, 9, 9, 6, 4};
  char line[256];
  out << "wattprobe report " << format_utc_instant(o.since_ms) << " to "
      << format_utc_instant(o.until_ms) << ", by " << by_name(o.by) << '\n';
  out << fit(s.covered_seconds, 12) << " s";
  if (s.covered_seconds >= 3600) out << " (" << fit(s.covered_seconds / 3600, 8) << " h)";
  out << " covered by " << s.lines << " ledger lines";
  if (s.skipped) out << ", " << s.skipped << " malformed lines skipped";
  out << "\n\n";
  std::snprintf(line, sizeof line, "%-*s %*s %*s %*s %*s %*s %*s %*s\n", kName,
                std::string(by_name(o.by)).c_str(), kWidths[0], "energy J", kWidths[1], "GPU J",
                kWidths[2], "CPU s", kWidths[3], "op gCO2e", kWidths[4], "emb gCO2e", kWidths[5],
                "g/kWh", kWidths[6], "meas");
  out << line;
  auto row = [&](const std::string& name, const ReportRow& r) {
    std::string shown = name.empty() ? "-" : name;
    if (static_cast<int>(shown.size()) > kName) {
      out << shown << '\n';
      shown.clear();
    }
    auto g = per_kwh(r);
    auto m = measured_share(r);
    char share[8] = "-";
    if (m) std::snprintf(share, sizeof share, "%.0f%%", *m * 100);
    std::snprintf(line, sizeof line, "%-*s %*s %*s %*s %*s %*s %*s %*s\n", kName, shown.c_str(),
                  kWidths[0], fit(r.joules, kWidths[0]).c_str(), kWidths[1],
                  fit(r.gpu_joules, kWidths[1]).c_str(), kWidths[2],
                  fit(r.cpu_seconds, kWidths[2]).c_str(), kWidths[3],
                  fit(r.operational_grams, kWidths[3]).c_str(), kWidths[4],
                  fit(r.embodied_grams, kWidths[4]).c_str(), kWidths[5],
                  g ? fit(*g, kWidths[5]).c_str() : "-", kWidths[6], share);
    out << line;
  };
  for (const ReportRow& r : s.groups) row(r.group, r);
  std::string rule(79, '-');
  out << rule << '\n';
  row("(idle)", s.idle);
  row("(unattributed)", s.unattributed);
  out << rule << '\n';
  row("total", s.total());
  if (o.functional_units) print_sci_table(o, s, out);
  if (s.total().cfe_matched_joules > 0) print_cfe_table(s, out);
}

/// --per-unit: one row per [unit.NAME] and workload glob, its E and M the matched workloads'.
struct PerUnitRow {
  std::string unit, workload;
  double units = 0;
  ReportRow row;
  std::vector<std::string> matched;
};

std::vector<PerUnitRow> per_unit_rows(const LedgerSums& s) {
  std::vector<PerUnitRow> rows;
  for (const auto& [key, units] : s.units) {
    PerUnitRow r{key.first, key.second, units, ReportRow{key.second}, {}};
    for (const auto& [name, w] : s.workloads) {
      if (fnmatch(key.second.c_str(), name.c_str(), 0) != 0) continue;
      r.row.add(w);
      r.matched.push_back(name);
    }
    rows.push_back(std::move(r));
  }
  return rows;
}

void print_per_unit(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  const std::vector<PerUnitRow> rows = per_unit_rows(s);
  if (o.format == ReportOptions::Format::json) {
    nlohmann::ordered_json j;
    j["period"]["since"] = format_utc_instant(o.since_ms);
    j["period"]["until"] = format_utc_instant(o.until_ms);
    j["units"] = nlohmann::ordered_json::array();
    for (const PerUnitRow& r : rows) {
      nlohmann::ordered_json u;
      u["unit"] = r.unit;
      u["workload"] = r.workload;
      u["matched_workloads"] = r.matched;
      write_row_json(u, r.row);
      u["joules_per_unit"] = r.row.joules / r.units;
      write_sci_json(u, r.row, r.units);
      j["units"].push_back(std::move(u));
    }
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    return;
  }
  if (o.format == ReportOptions::Format::csv) {
    out << "unit,workload,units,energy_joules,energy_kwh,operational_co2e_grams,"
           "embodied_co2e_grams,operational_grams_per_kwh,joules_per_unit,sci_grams_per_unit\n";
    for (const PerUnitRow& r : rows) {
      auto g = per_kwh(r.row);
      out << csv_field(r.unit) << ',' << csv_field(r.workload) << ',' << exact(r.units) << ','
          << exact(r.row.joules) << ',' << exact(r.row.joules / kJoulesPerKwh) << ','
          << exact(r.row.operational_grams) << ',' << exact(r.row.embodied_grams) << ','
          << (g ? exact(*g) : "") << ',' << exact(r.row.joules / r.units) << ','
          << exact(sci(r.row, r.units)) << '\n';
    }
    return;
  }
  out << "wattprobe report --per-unit " << format_utc_instant(o.since_ms) << " to "
      << format_utc_instant(o.until_ms) << '\n'
      << "SCI (ISO/IEC 21031) = (E x I + M) / R per [unit.NAME], R = the units its counter\n"
      << "counted; E, I, M of the workloads its glob matches. SCI: gCO2e per unit\n\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %-18s %10s %10s %8s %9s %9s %10s\n", "unit", "workload",
                "R units", "E kWh", "I g/kWh", "M gCO2e", "J/unit", "SCI g/unit");
  out << line;
  for (const PerUnitRow& r : rows) {
    if (r.unit.size() > 12 || r.workload.size() > 18) out << r.unit << "  " << r.workload << '\n';
    auto g = per_kwh(r.row);
    std::snprintf(line, sizeof line, "%-12s %-18s %10s %10s %8s %9s %9s %10s\n",
                  r.unit.size() > 12 ? "" : r.unit.c_str(),
                  r.workload.size() > 18 ? "" : r.workload.c_str(), fit(r.units, 10).c_str(),
                  fit(r.row.joules / kJoulesPerKwh, 10).c_str(), g ? fit(*g, 8).c_str() : "-",
                  fit(r.row.embodied_grams, 9).c_str(), fit(r.row.joules / r.units, 9).c_str(),
                  fit(sci(r.row, r.units), 10).c_str());
    out << line;
  }
}

}  // namespace

void ReportRow::add(const ReportRow& o) {
  joules += o.joules;
  gpu_joules += o.gpu_joules;
  cpu_seconds += o.cpu_seconds;
  operational_grams += o.operational_grams;
  embodied_grams += o.embodied_grams;
  measured_joules += o.measured_joules;
  cfe_joules += o.cfe_joules;
  cfe_matched_joules += o.cfe_matched_joules;
}

ReportRow LedgerSums::total() const {
  ReportRow t{"total"};
  for (const ReportRow& r : groups) t.add(r);
  t.add(idle);
  t.add(unattributed);
  return t;
}

std::optional<int64_t> parse_report_time(std::string_view text, int64_t now_ms) {
  return parse_utc_time_or_ago(text, now_ms);
}

std::string report_help() {
  return "usage: wattprobe report [--since T] [--until T] [--by workload|kind|namespace]\n"
         "                        [--format table|csv|json] [--state-dir DIR]\n"
         "Sums the ledger (<state-dir>/ledger/YYYY-MM-DD.jsonl) over the periods that start in\n"
         "[since, until): energy (and the GPUs' part of it), CPU time, operational and embodied\n"
         "CO2e, grams per kWh and the share of the energy that was measured rather than\n"
         "estimated.\n"
         "  --since T      2026-11-23T10:00:00Z, 2026-11-23 (UTC midnight), now, or -24h, -30m,\n"
         "                 -7d before now (default -24h)\n"
         "  --until T      the same forms (default now)\n"
         "  --by G         workload (default), kind or namespace\n"
         "  --format F     table (default), csv or json\n"
         "  --state-dir D  the agent's --state-dir (default /var/lib/wattprobe)\n"
         "  --functional-units N      R, the functional units served in the period (requests,\n"
         "                 jobs, users): adds SCI = (E x I + M) / R per row (ISO/IEC 21031)\n"
         "  --functional-unit-name S  what one unit is called (default unit)\n"
         "  --per-unit     SCI per [unit.NAME] instead: R the units its counter counted in the\n"
         "                 period, E and M those of the workloads its glob matches\n";
}

ReportOptions parse_report_options(const std::vector<std::string>& all_args, int64_t now_ms) {
  static const std::set<std::string> kFlags{
      "since", "until", "by", "format", "state-dir", "functional-units", "functional-unit-name"};
  // --per-unit takes no value; every other flag does.
  std::vector<std::string> args;
  bool per_unit = false;
  for (const std::string& a : all_args) {
    if (a == "--per-unit" && !per_unit) {
      per_unit = true;
    } else {
      args.push_back(a);
    }
  }
  std::map<std::string, std::string> given = parse_flag_args(args, kFlags);

  ReportOptions o;
  o.per_unit = per_unit;
  if (per_unit && given.count("functional-units")) {
    refuse_flag("functional-units", given["functional-units"],
                "--per-unit takes R from the ledger's unit lines; give one or the other");
  }
  const FlagPeriod period = flag_period(given, now_ms);
  o.since_ms = period.since_ms;
  o.until_ms = period.until_ms;
  using R = ReportOptions;
  const auto& group_by = group_by_words();
  static const std::vector<Choice<R::Format>> formats{
      {"table", R::Format::table}, {"csv", R::Format::csv}, {"json", R::Format::json}};
  if (given.count("by")) {
    auto by = value_of(group_by, given["by"]);
    if (!by) refuse_flag("by", given["by"], "expected " + words_of(group_by));
    o.by = *by;
  }
  if (given.count("format")) {
    auto format = value_of(formats, given["format"]);
    if (!format) refuse_flag("format", given["format"], "expected " + words_of(formats));
    o.format = *format;
  }
  if (given.count("state-dir")) {
    if (given["state-dir"].empty()) refuse_flag("state-dir", "", "expected a folder");
    o.state_dir = given["state-dir"];
  }
  if (given.count("functional-units")) {
    const std::string& v = given["functional-units"];
    double n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || !(n > 0) || !std::isfinite(n)) {
      refuse_flag("functional-units", v, "expected a number of units above 0, e.g. 1200000");
    }
    o.functional_units = n;
  }
  if (given.count("functional-unit-name")) {
    const std::string& v = given["functional-unit-name"];
    bool printable =
        !v.empty() && v.size() <= 40 &&
        std::all_of(v.begin(), v.end(), [](unsigned char c) { return c > 32 && c < 127; });
    if (!printable)
      refuse_flag("functional-unit-name", v, "expected a word of 1 to 40 printable characters");
    if (!o.functional_units) {
      refuse_flag("functional-unit-name", v,
                  "names the unit of --functional-units, which is not given");
    }
    o.functional_unit_name = v;
  }
  return o;
}

Result<ReportRow> parse_ledger_line(const std::string& text) {
  auto line = parse_line(text);
  if (!line.ok()) return line.error();
  return line->row;
}

LedgerSums sum_ledger(const ReportOptions& o, std::ostream& warnings) {
  LedgerSums sums;
  std::map<std::string, ReportRow> groups;
  const int key = static_cast<int>(o.by);  // GroupBy's order matches ParsedLine::group_key
  const std::filesystem::path dir = o.state_dir / "ledger";
  for (int64_t day = utc_day(o.since_ms); day <= utc_day(o.until_ms - 1); ++day) {
    std::filesystem::path path = dir / (format_utc_date(day * kMsPerUtcDay) + ".jsonl");
    std::ifstream in(path);
    if (!in) {
      // No file: the agent did not run that day, or retention removed it. A file that is there
      // but cannot be read is named, since its lines are missing from the totals.
      int err = errno;
      std::error_code ec;
      if (std::filesystem::exists(path, ec)) {
        warnings << path.string() << ": cannot read: " << std::strerror(err) << '\n';
      }
      continue;
    }
    sums.files.push_back(path);
    std::string text;
    for (uint64_t number = 1; std::getline(in, text); ++number) {
      auto line = parse_line(text);
      if (!line.ok()) {
        if (++sums.skipped <= kMaxNamedLines) {
          warnings << path.string() << ':' << number << ": " << line.error().detail << '\n';
        }
        continue;
      }
      if (line->start_ms < o.since_ms || line->start_ms >= o.until_ms) continue;
      ++sums.lines;
      if (line->type == "idle") {
        sums.idle.add(line->row);
        // Every period has exactly one idle line per writer, so these add up the time covered.
        sums.covered_seconds += line->covered_seconds;
      } else if (line->type == "unattributed") {
        sums.unattributed.add(line->row);
      } else if (line->type == "unit") {
        sums.units[{line->unit, line->group_key[0]}] += line->units;
      } else {
        if (o.per_unit) sums.workloads[line->group_key[0]].add(line->row);
        ReportRow& g = groups[line->group_key[key]];
        g.group = line->group_key[key];
        g.add(line->row);
      }
    }
  }
  if (sums.skipped > kMaxNamedLines) {
    warnings << "... and " << sums.skipped - kMaxNamedLines << " more malformed lines\n";
  }
  for (auto& [name, row] : groups) sums.groups.push_back(std::move(row));
  std::stable_sort(sums.groups.begin(), sums.groups.end(),
                   [](const ReportRow& a, const ReportRow& b) { return a.joules > b.joules; });
  return sums;
}

void print_report(const ReportOptions& o, const LedgerSums& s, std::ostream& out) {
  if (o.per_unit) return print_per_unit(o, s, out);
  switch (o.format) {
    case ReportOptions::Format::csv:
      print_csv(o, s, out);
      return;
    case ReportOptions::Format::json:
      print_json(o, s, out);
      return;
    case ReportOptions::Format::table:
      print_table(o, s, out);
      return;
  }
}

int run_report(const std::vector<std::string>& all_args, std::ostream& out, std::ostream& err) {
  for (const std::string& a : all_args) {
    if (a == "--help" || a == "-h") {
      out << report_help() << replacement_help() << job_report_help();
      return 0;
    }
  }
  // --jobs lists the job records instead (agent/cli/job_report.h); it takes no value.
  if (auto jobs = std::find(all_args.begin(), all_args.end(), "--jobs"); jobs != all_args.end()) {
    std::vector<std::string> rest(all_args.begin(), jobs);
    rest.insert(rest.end(), jobs + 1, all_args.end());
    return run_job_report(rest, out, err);
  }
  ReportOptions o;
  std::vector<std::string> args = all_args;
  std::optional<ReplacementOptions> replacement;
  try {
    auto taken = take_replacement_options(args);
    if (!taken) throw UsageError(taken.error().detail);
    replacement = *taken;
    o = parse_report_options(args, wall_ms());
  } catch (const UsageError& e) {
    err << "wattprobe report: " << e.what() << '\n';
    return 2;
  }
  LedgerSums sums = sum_ledger(o, err);
  if (sums.lines == 0) {
    err << "wattprobe report: no ledger lines for periods starting in ["
        << format_utc_instant(o.since_ms) << ", " << format_utc_instant(o.until_ms) << ") under "
        << (o.state_dir / "ledger").string() << '\n';
    return 1;
  }
  if (o.per_unit && sums.units.empty()) {
    err << "wattprobe report: no unit lines for periods starting in ["
        << format_utc_instant(o.since_ms) << ", " << format_utc_instant(o.until_ms)
        << "): no [unit.NAME] counted units then (README \"Per unit of work\")\n";
    return 1;
  }
  if (replacement) {
    const ReportRow total = sums.total();
    const LedgerTotals ledger{o.since_ms,           o.until_ms,
                              total.joules,         total.operational_grams,
                              total.embodied_grams, sums.covered_seconds};
    auto result = compute_replacement(*replacement, ledger, wall_ms());
    if (!result) {
      err << "wattprobe report: " << result.error().detail << '\n';
      return 1;
    }
    print_replacement(*replacement, ledger, *result, out);
    return 0;
  }
  print_report(o, sums, out);
  return 0;
}

}  // namespace wattprobe
