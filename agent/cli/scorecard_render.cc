#include "agent/cli/scorecard_render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "agent/base/utc_time.h"

namespace wattprobe {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string grams(double g) {
  const double a = std::fabs(g);
  if (a >= 1e6) return fmt("%.3f t", g / 1e6);
  if (a >= 1e3) return fmt("%.2f kg", g / 1e3);
  if (a > 0 && a < 1) return fmt("%.3g g", g);  // grams per request are often fractions
  return fmt("%.1f g", g);
}

std::string signed_grams(double g) { return (g > 0 ? "+" : "") + grams(g); }

std::string kwh(double joules) { return fmt("%.2f kWh", joules / kJoulesPerKwh); }

std::string percent(double ratio) { return fmt("%.1f %%", ratio * 100); }

std::string group_name(const std::string& g) { return g.empty() ? "(none)" : g; }

std::string share(const PeriodFigures& f) {
  auto m = f.measured_share();
  return m ? percent(*m) : "n/a";
}

std::string per_unit(const PeriodFigures& f) {
  std::string out;
  for (const auto& [unit, g] : f.grams_per_unit()) {
    if (!out.empty()) out += ", ";
    out += grams(g) + (unit == "cpu_hour" ? " / CPU-hour" : " / " + unit);
  }
  return out.empty() ? "n/a" : out;
}

std::string change_percent(const Decomposition& d) {
  return d.change_percent ? fmt("%+.1f %%", *d.change_percent) : "new";
}

std::string date_range(int64_t start, int64_t end) {
  return format_utc_instant(start) + " to " + format_utc_instant(end);
}

const GroupFigures* find_group(const Scorecard& card, const std::string& name) {
  for (const auto& g : card.groups) {
    if (g.group == name) return &g;
  }
  return nullptr;
}

/// "≥ " before a figure that is a lower bound (its reasons are printed beside it).
std::string bound(const GroupFigures& g) { return g.lower_bound.empty() ? "" : "≥ "; }

std::string reasons(const GroupFigures& g) {
  std::string out;
  for (const auto& r : g.lower_bound) out += (out.empty() ? "lower bound: " : "; ") + r;
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|' || c == '\\' || c == '*' || c == '_' || c == '`' || c == '<') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

nlohmann::json period_json(const PeriodFigures& f) {
  nlohmann::json j;
  j["operational_grams"] = f.operational_grams;
  j["embodied_grams"] = f.embodied_grams;
  j["grams"] = f.grams();
  j["energy_joules"] = f.energy_joules;
  j["energy_kwh"] = f.energy_joules / kJoulesPerKwh;
  j["component_joules"] = f.component_joules;
  j["measured_joules"] = f.measured_joules;
  auto m = f.measured_share();
  j["measured_share"] = m ? nlohmann::json(*m) : nlohmann::json();
  j["estimated_share"] = m ? nlohmann::json(1 - *m) : nlohmann::json();
  j["cpu_seconds"] = f.cpu_seconds;
  j["intensity_g_per_kwh"] = f.intensity_g_per_kwh();
  j["units"] = f.units;
  j["grams_per_unit"] = f.grams_per_unit();
  return j;
}

nlohmann::json group_json(const GroupFigures& g) {
  nlohmann::json j;
  j["group"] = g.group;
  j["current"] = period_json(g.current);
  j["previous"] = period_json(g.previous);
  const Decomposition& d = g.change;
  j["change"] = {{"grams", d.change_grams},
                 {"percent", d.change_percent ? nlohmann::json(*d.change_percent) : nullptr},
                 {"energy_term_grams", d.energy_term},
                 {"intensity_term_grams", d.intensity_term},
                 {"embodied_term_grams", d.embodied_term}};
  j["lower_bound"] = !g.lower_bound.empty();
  j["lower_bound_reasons"] = g.lower_bound;
  return j;
}

nlohmann::json findings_json(const std::vector<HostFinding>& list, const char* value_name) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& f : list) {
    nlohmann::json j{{"host", f.host}, {value_name, f.value}};
    if (!f.item.empty()) j["item"] = f.item;
    if (!f.note.empty()) j["note"] = f.note;
    a.push_back(j);
  }
  return a;
}

}  // namespace

void render_scorecard_json(const Scorecard& card, std::size_t top, std::ostream& out) {
  nlohmann::json j;
  j["period"] = {{"name", card.period_name},
                 {"start", format_utc_instant(card.start_ms)},
                 {"end", format_utc_instant(card.end_ms)}};
  j["previous_period"] = {{"start", format_utc_instant(card.previous_start_ms)},
                          {"end", format_utc_instant(card.previous_end_ms)}};
  j["by"] = card.by;
  j["energy_basis"] = card.energy_basis;
  j["intensity_basis"] = card.intensity_basis;
  j["partial"] = card.partial();
  j["groups"] = nlohmann::json::array();
  for (const auto& g : card.groups) j["groups"].push_back(group_json(g));
  j["total"] = group_json(card.total);
  j["drivers"] = {{"by_grams", drivers_by_grams(card.groups, top)},
                  {"by_percent", drivers_by_percent(card.groups, top)}};
  j["budgets"] = nlohmann::json::array();
  for (const auto& b : card.budgets) {
    j["budgets"].push_back({{"workload", b.workload},
                            {"kind", b.kind},
                            {"window", b.window},
                            {"budget_grams", b.budget_grams},
                            {"allowance_grams", b.allowance_grams},
                            {"used_grams", b.used_grams},
                            {"use_ratio", b.use_ratio()},
                            {"peak_window_grams", b.peak_window_grams}});
  }
  const Hardware& hw = card.hardware;
  j["hardware"]["past_amortization"] = findings_json(hw.past_amortization, "amortized_ratio");
  j["hardware"]["batteries_under_80_percent"] = findings_json(hw.batteries_worn, "capacity_ratio");
  j["hardware"]["nvme_over_80_percent_wear"] = findings_json(hw.drives_worn, "wear_ratio");
  j["hardware"]["throttled"] = findings_json(hw.throttled, "throttle_events");
  j["hardware"]["keep_or_replace"] = nlohmann::json::array();
  for (const auto& k : hw.keep_or_replace) {
    j["hardware"]["keep_or_replace"].push_back({{"host", k.host},
                                                {"keep_grams_a_year", k.keep_grams},
                                                {"replace_grams_a_year", k.replace_grams},
                                                {"answer", k.answer}});
  }
  if (!hw.keep_or_replace_inputs.empty()) {
    j["hardware"]["keep_or_replace_missing"] = hw.keep_or_replace_inputs;
  }
  const DataQuality& q = card.quality;
  j["data_quality"]["stopped_hosts"] = nlohmann::json::array();
  for (const auto& s : q.stopped) {
    j["data_quality"]["stopped_hosts"].push_back({{"host", s.host},
                                                  {"period", s.previous ? "previous" : "current"},
                                                  {"last_seen", format_utc_instant(s.last_seen_ms)},
                                                  {"gap_seconds", s.gap_seconds}});
  }
  j["data_quality"]["silent_hosts"] = nlohmann::json::array();
  for (const auto& s : q.silent) {
    j["data_quality"]["silent_hosts"].push_back({{"host", s.host},
                                                 {"period", s.previous ? "previous" : "current"},
                                                 {"silent_seconds", s.silent_seconds}});
  }
  j["data_quality"]["stalled_sources"] = findings_json(q.stalled, "stalled");
  j["data_quality"]["unattributed_over_5_percent"] = findings_json(q.unattributed, "share");
  j["data_quality"]["fleet_unattributed_share"] = q.fleet_unattributed_share;
  j["queries"] = nlohmann::json::array();
  for (const auto& r : card.queries) {
    j["queries"].push_back({{"figure", r.figure},
                            {"promql", r.promql},
                            {"time", format_utc_instant(r.time_ms)},
                            {"series", r.series},
                            {"partial", !r.warnings.empty()},
                            {"warnings", r.warnings}});
  }
  out << j.dump(2) << '\n';
}

void render_scorecard_markdown(const Scorecard& card, std::size_t top, std::ostream& out) {
  const GroupFigures& t = card.total;
  out << "# Carbon scorecard " << card.period_name << "\n\n";
  out << "Period " << date_range(card.start_ms, card.end_ms) << ", compared with "
      << date_range(card.previous_start_ms, card.previous_end_ms) << "; by `" << md_escape(card.by)
      << "`.\n\n";
  if (card.partial()) {
    out << "**Partial answer:** the server warned on some queries (listed in the JSON); the "
           "figures built from them are marked as lower bounds.\n\n";
  }
  out << "**Total: " << bound(t) << grams(t.current.grams()) << "** (" << grams(t.previous.grams())
      << " before, " << signed_grams(t.change.change_grams) << ", " << change_percent(t.change)
      << ")";
  if (!t.lower_bound.empty()) out << ". " << md_escape(reasons(t));
  out << "\n\n";
  out << "## Emissions per group\n\n";
  out << "| group | grams | operational | embodied | energy | g/kWh | measured | per unit of "
         "work | before | change | note |\n";
  out << "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|\n";
  auto row = [&](const GroupFigures& g) {
    out << "| " << md_escape(group_name(g.group)) << " | " << bound(g) << grams(g.current.grams())
        << " | " << bound(g) << grams(g.current.operational_grams) << " | " << bound(g)
        << grams(g.current.embodied_grams) << " | " << bound(g) << kwh(g.current.energy_joules)
        << " | " << fmt("%.1f", g.current.intensity_g_per_kwh()) << " | " << share(g.current)
        << " | " << per_unit(g.current) << " | " << grams(g.previous.grams()) << " | "
        << change_percent(g.change) << " | " << md_escape(reasons(g)) << " |\n";
  };
  for (const auto& g : card.groups) row(g);
  row(t);
  out << "\nEnergy: " << md_escape(card.energy_basis)
      << ". Intensity per unit of work: " << card.intensity_basis << ".\n\n";
  out << "## Top drivers\n\n";
  out << "By grams:\n\n";
  for (const auto& name : drivers_by_grams(card.groups, top)) {
    const GroupFigures* g = find_group(card, name);
    out << "- " << md_escape(group_name(name)) << ": " << signed_grams(g->change.change_grams)
        << " (" << change_percent(g->change) << ")\n";
  }
  out << "\nBy percent:\n\n";
  for (const auto& name : drivers_by_percent(card.groups, top)) {
    const GroupFigures* g = find_group(card, name);
    out << "- " << md_escape(group_name(name)) << ": " << change_percent(g->change) << " ("
        << signed_grams(g->change.change_grams) << ")\n";
  }
  out << "\n## Why it changed\n\n";
  out << "Δgrams = ΔE × I_before (more or less energy) + E_after × ΔI (a dirtier or cleaner "
         "grid, or a move) + Δembodied.\n\n";
  out << "| group | change | energy | intensity | embodied |\n|---|---:|---:|---:|---:|\n";
  auto drow = [&](const GroupFigures& g) {
    out << "| " << md_escape(group_name(g.group)) << " | " << signed_grams(g.change.change_grams)
        << " | " << signed_grams(g.change.energy_term) << " | "
        << signed_grams(g.change.intensity_term) << " | " << signed_grams(g.change.embodied_term)
        << " |\n";
  };
  for (const auto& g : card.groups) drow(g);
  drow(t);
  out << "\n## Budgets\n\n";
  if (card.budgets.empty()) out << "No carbon budget is configured.\n";
  for (const auto& b : card.budgets) {
    out << "- " << md_escape(b.workload) << " (" << b.window << " budget " << grams(b.budget_grams)
        << "): " << grams(b.used_grams) << " of " << grams(b.allowance_grams) << " for the period, "
        << percent(b.use_ratio()) << "; highest window " << grams(b.peak_window_grams) << "\n";
  }
  const Hardware& hw = card.hardware;
  out << "\n## Hardware\n\n";
  auto list = [&](const char* title, const std::vector<HostFinding>& items, auto describe) {
    out << "- " << title << ": " << (items.empty() ? "none" : std::to_string(items.size())) << "\n";
    for (const auto& f : items) out << "  - " << md_escape(f.host) << ": " << describe(f) << "\n";
  };
  list("Hosts past their amortization", hw.past_amortization, [](const HostFinding& f) {
    return fmt("amortized %.2f", f.value) + (f.note.empty() ? "" : ", " + f.note);
  });
  list("Batteries under 80 % of design capacity", hw.batteries_worn,
       [](const HostFinding& f) { return md_escape(f.item) + " at " + percent(f.value); });
  list("NVMe drives over 80 % of rated wear", hw.drives_worn, [](const HostFinding& f) {
    return md_escape(f.item) + " (" + md_escape(f.note) + ") at " + percent(f.value);
  });
  list("Hosts that throttled", hw.throttled,
       [](const HostFinding& f) { return fmt("%.0f throttle events", f.value); });
  out << "- Keep or replace:";
  if (hw.keep_or_replace.empty()) {
    out << " "
        << (hw.keep_or_replace_inputs.empty() ? "no host past its amortization"
                                              : md_escape(hw.keep_or_replace_inputs));
  }
  out << "\n";
  for (const auto& k : hw.keep_or_replace) {
    out << "  - " << md_escape(k.host) << ": " << k.answer << " (keep " << grams(k.keep_grams)
        << " a year, replace " << grams(k.replace_grams) << ")\n";
  }
  const DataQuality& q = card.quality;
  out << "\n## Data quality\n\n";
  out << "- Hosts that stopped reporting: "
      << (q.stopped.empty() ? "none" : std::to_string(q.stopped.size())) << "\n";
  for (const auto& s : q.stopped) {
    out << "  - " << md_escape(s.host) << ": last seen " << format_utc_instant(s.last_seen_ms)
        << ", silent " << fmt("%.1f days", s.gap_seconds / 86400)
        << (s.previous ? " before the period before's end" : "")
        << " (its groups' figures are lower bounds)\n";
  }
  out << "- Hosts silent for a while within the period: "
      << (q.silent.empty() ? "none" : std::to_string(q.silent.size())) << "\n";
  for (const auto& s : q.silent) {
    out << "  - " << md_escape(s.host) << ": silent " << fmt("%.0f h", s.silent_seconds / 3600)
        << (s.previous ? " in the period before" : "")
        << " (its groups' figures may be lower bounds)\n";
  }
  out << "- Stalled sources: " << (q.stalled.empty() ? "none" : std::to_string(q.stalled.size()))
      << "\n";
  for (const auto& s : q.stalled) out << "  - " << md_escape(s.host) << ": " << s.item << "\n";
  out << "- Hosts with unattributed energy over 5 %: "
      << (q.unattributed.empty() ? "none" : std::to_string(q.unattributed.size()))
      << " (fleet: " << percent(q.fleet_unattributed_share) << ")\n";
  for (const auto& u : q.unattributed) {
    out << "  - " << md_escape(u.host) << ": " << percent(u.value) << "\n";
  }
  out << "\nEvery figure's PromQL is in the JSON scorecard (`queries`).\n";
}

namespace {

struct Bar {
  std::string label;
  double before = 0, after = 0;
};

/// Grams per group, before and after, as horizontal bar pairs.
void svg_groups(const Scorecard& card, std::ostream& out) {
  std::vector<const GroupFigures*> shown;
  for (const auto& g : card.groups) {
    if (shown.size() < 12) shown.push_back(&g);
  }
  double most = 1;
  for (const auto* g : shown) most = std::max({most, g->current.grams(), g->previous.grams()});
  const int label_w = 170, bar_w = 430, row_h = 34;
  const int height = 30 + row_h * static_cast<int>(shown.size());
  out << "<svg id=\"chart-groups\" width=\"720\" height=\"" << height << "\" viewBox=\"0 0 720 "
      << height << "\" role=\"img\" aria-label=\"Emissions per group, before and after\">\n";
  out << "<rect x=\"" << label_w << "\" y=\"4\" width=\"12\" height=\"10\" fill=\"#9aa5b1\"/>"
      << "<text x=\"" << label_w + 16 << "\" y=\"13\" font-size=\"11\">before</text>"
      << "<rect x=\"" << label_w + 70 << "\" y=\"4\" width=\"12\" height=\"10\" fill=\"#2b6cb0\"/>"
      << "<text x=\"" << label_w + 86 << "\" y=\"13\" font-size=\"11\">this period</text>\n";
  int y = 24;
  for (const auto* g : shown) {
    const double wb = bar_w * g->previous.grams() / most;
    const double wa = bar_w * g->current.grams() / most;
    out << "<text x=\"" << label_w - 6 << "\" y=\"" << y + 18
        << "\" font-size=\"12\" text-anchor=\"end\">" << html_escape(group_name(g->group))
        << "</text>";
    out << "<rect class=\"before\" x=\"" << label_w << "\" y=\"" << y + 3 << "\" width=\""
        << fmt("%.1f", wb) << "\" height=\"12\" fill=\"#9aa5b1\"/>";
    out << "<rect class=\"after\" x=\"" << label_w << "\" y=\"" << y + 16 << "\" width=\""
        << fmt("%.1f", wa) << "\" height=\"12\" fill=\"#2b6cb0\"/>";
    out << "<text x=\"" << label_w + wa + 4 << "\" y=\"" << y + 26 << "\" font-size=\"11\">"
        << html_escape(bound(*g) + grams(g->current.grams())) << "</text>\n";
    y += row_h;
  }
  out << "</svg>\n";
}

/// The total's change as a waterfall: before, the three terms, after.
void svg_waterfall(const Scorecard& card, std::ostream& out) {
  const GroupFigures& t = card.total;
  struct Step {
    std::string label;
    double from, to;
    const char* color;
  };
  const double b = t.previous.grams();
  const double e = b + t.change.energy_term;
  const double i = e + t.change.intensity_term;
  const double a = i + t.change.embodied_term;
  auto color = [](double d) { return d > 0 ? "#c53030" : "#2f855a"; };
  std::vector<Step> steps{{"before", 0, b, "#9aa5b1"},
                          {"energy", b, e, color(e - b)},
                          {"intensity", e, i, color(i - e)},
                          {"embodied", i, a, color(a - i)},
                          {"this period", 0, a, "#2b6cb0"}};
  double top = 1, bottom = 0;
  for (const auto& s : steps) {
    top = std::max({top, s.from, s.to});
    bottom = std::min({bottom, s.from, s.to});
  }
  const int height = 260, chart_h = 190, base_y = 220, col_w = 120, x0 = 40;
  auto yof = [&](double v) { return base_y - chart_h * (v - bottom) / (top - bottom); };
  out << "<svg id=\"chart-waterfall\" width=\"720\" "
         "height=\""
      << height << "\" viewBox=\"0 0 720 " << height
      << "\" role=\"img\" aria-label=\"Waterfall of the change in grams\">\n";
  out << "<line x1=\"" << x0 - 10 << "\" y1=\"" << fmt("%.1f", yof(0)) << "\" x2=\"700\" y2=\""
      << fmt("%.1f", yof(0)) << "\" stroke=\"#444\"/>\n";
  int x = x0;
  for (const auto& s : steps) {
    const double y1 = std::min(yof(s.from), yof(s.to));
    const double h = std::max(1.0, std::fabs(yof(s.from) - yof(s.to)));
    out << "<rect class=\"step\" x=\"" << x << "\" y=\"" << fmt("%.1f", y1) << "\" width=\"80\" "
        << "height=\"" << fmt("%.1f", h) << "\" fill=\"" << s.color << "\"/>";
    const bool whole = s.label == "before" || s.label == "this period";
    out << "<text x=\"" << x + 40 << "\" y=\"" << fmt("%.1f", y1 - 4)
        << "\" font-size=\"11\" text-anchor=\"middle\">"
        << html_escape(whole ? grams(s.to) : signed_grams(s.to - s.from)) << "</text>";
    out << "<text x=\"" << x + 40 << "\" y=\"" << base_y + 30
        << "\" font-size=\"12\" text-anchor=\"middle\">" << s.label << "</text>\n";
    x += col_w + 10;
  }
  out << "</svg>\n";
}

}  // namespace

void render_scorecard_html(const Scorecard& card, std::size_t top, std::ostream& out) {
  const GroupFigures& t = card.total;
  out << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      << "<title>Carbon scorecard " << html_escape(card.period_name) << "</title>\n"
      << "<style>body{font-family:sans-serif;margin:2em;color:#1a202c;background:#fff}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #cbd5e0;"
         "padding:4px "
         "8px;text-align:right;white-space:nowrap}td:first-child,th:first-child{text-align:left}"
         ".note{color:#9c4221;text-align:left;font-size:90%;white-space:normal}.warn{background:#"
         "fefcbf;"
         "padding:.5em}h1{color:#2b6cb0}</style>\n</head>\n<body>\n";
  out << "<h1>Carbon scorecard " << html_escape(card.period_name) << "</h1>\n";
  out << "<p>Period " << date_range(card.start_ms, card.end_ms) << ", compared with "
      << date_range(card.previous_start_ms, card.previous_end_ms) << "; by <code>"
      << html_escape(card.by) << "</code>.</p>\n";
  if (card.partial()) {
    out << "<p class=\"warn\">Partial answer: the server warned on some queries; the figures "
           "built from them are marked as lower bounds.</p>\n";
  }
  out << "<p><strong>Total: " << html_escape(bound(t) + grams(t.current.grams())) << "</strong> ("
      << html_escape(grams(t.previous.grams())) << " before, "
      << html_escape(signed_grams(t.change.change_grams)) << ", "
      << html_escape(change_percent(t.change)) << ")";
  if (!t.lower_bound.empty())
    out << " <span class=\"note\">" << html_escape(reasons(t)) << "</span>";
  out << "</p>\n<h2>Emissions per group</h2>\n";
  svg_groups(card, out);
  out << "<table>\n<tr><th>group</th><th>grams</th><th>operational</th><th>embodied</th>"
         "<th>energy</th><th>g/kWh</th><th>measured</th><th>per unit of work</th><th>before</th>"
         "<th>change</th><th>note</th></tr>\n";
  auto row = [&](const GroupFigures& g) {
    out << "<tr><td>" << html_escape(group_name(g.group)) << "</td><td>"
        << html_escape(bound(g) + grams(g.current.grams())) << "</td><td>"
        << html_escape(bound(g) + grams(g.current.operational_grams)) << "</td><td>"
        << html_escape(bound(g) + grams(g.current.embodied_grams)) << "</td><td>"
        << html_escape(bound(g) + kwh(g.current.energy_joules)) << "</td><td>"
        << fmt("%.1f", g.current.intensity_g_per_kwh()) << "</td><td>"
        << html_escape(share(g.current)) << "</td><td>" << html_escape(per_unit(g.current))
        << "</td><td>" << html_escape(grams(g.previous.grams())) << "</td><td>"
        << html_escape(change_percent(g.change)) << "</td><td class=\"note\">"
        << html_escape(reasons(g)) << "</td></tr>\n";
  };
  for (const auto& g : card.groups) row(g);
  row(t);
  out << "</table>\n<p>Energy: " << html_escape(card.energy_basis)
      << ". Intensity per unit of work: " << html_escape(card.intensity_basis) << ".</p>\n";
  out << "<h2>Why it changed</h2>\n";
  svg_waterfall(card, out);
  out << "<table>\n<tr><th>group</th><th>change</th><th>energy</th><th>intensity</th>"
         "<th>embodied</th></tr>\n";
  auto drow = [&](const GroupFigures& g) {
    out << "<tr><td>" << html_escape(group_name(g.group)) << "</td><td>"
        << html_escape(signed_grams(g.change.change_grams)) << "</td><td>"
        << html_escape(signed_grams(g.change.energy_term)) << "</td><td>"
        << html_escape(signed_grams(g.change.intensity_term)) << "</td><td>"
        << html_escape(signed_grams(g.change.embodied_term)) << "</td></tr>\n";
  };
  for (const auto& g : card.groups) drow(g);
  drow(t);
  out << "</table>\n<h2>Top drivers</h2>\n<ol>\n";
  for (const auto& name : drivers_by_grams(card.groups, top)) {
    const GroupFigures* g = find_group(card, name);
    out << "<li>" << html_escape(group_name(name)) << ": "
        << html_escape(signed_grams(g->change.change_grams)) << " ("
        << html_escape(change_percent(g->change)) << ")</li>\n";
  }
  out << "</ol>\n";
  out << "<h2>Budgets</h2>\n<ul>\n";
  if (card.budgets.empty()) out << "<li>No carbon budget is configured.</li>\n";
  for (const auto& b : card.budgets) {
    out << "<li>" << html_escape(b.workload) << " (" << html_escape(b.window)
        << "): " << html_escape(grams(b.used_grams)) << " of "
        << html_escape(grams(b.allowance_grams)) << ", " << html_escape(percent(b.use_ratio()))
        << "</li>\n";
  }
  out << "</ul>\n<h2>Hardware</h2>\n<ul>\n";
  const Hardware& hw = card.hardware;
  auto list = [&](const char* title, const std::vector<HostFinding>& items, const char* format) {
    out << "<li>" << title << ": " << (items.empty() ? "none" : "") << "<ul>";
    for (const auto& f : items) {
      out << "<li>" << html_escape(f.host) << (f.item.empty() ? "" : " " + html_escape(f.item))
          << ": " << fmt(format, f.value) << (f.note.empty() ? "" : " " + html_escape(f.note))
          << "</li>";
    }
    out << "</ul></li>\n";
  };
  list("Hosts past their amortization", hw.past_amortization, "amortized %.2f");
  list("Batteries under 80 % of design capacity", hw.batteries_worn, "%.2f of design");
  list("NVMe drives over 80 % of rated wear", hw.drives_worn, "%.2f of rated wear");
  list("Hosts that throttled", hw.throttled, "%.0f events");
  out << "<li>Keep or replace: ";
  if (hw.keep_or_replace.empty()) {
    out << html_escape(hw.keep_or_replace_inputs.empty() ? "no host past its amortization"
                                                         : hw.keep_or_replace_inputs);
  }
  out << "<ul>";
  for (const auto& k : hw.keep_or_replace) {
    out << "<li>" << html_escape(k.host) << ": " << k.answer << " (keep "
        << html_escape(grams(k.keep_grams)) << " a year, replace "
        << html_escape(grams(k.replace_grams)) << ")</li>";
  }
  out << "</ul></li>\n</ul>\n<h2>Data quality</h2>\n<ul>\n";
  const DataQuality& q = card.quality;
  out << "<li>Hosts that stopped reporting: " << (q.stopped.empty() ? "none" : "") << "<ul>";
  for (const auto& s : q.stopped) {
    out << "<li>" << html_escape(s.host) << ": last seen " << format_utc_instant(s.last_seen_ms)
        << ", silent " << fmt("%.1f days", s.gap_seconds / 86400)
        << (s.previous ? " before the period before's end" : "") << "</li>";
  }
  out << "</ul></li>\n";
  out << "<li>Hosts silent for a while within the period: " << (q.silent.empty() ? "none" : "")
      << "<ul>";
  for (const auto& s : q.silent) {
    out << "<li>" << html_escape(s.host) << ": silent " << fmt("%.0f h", s.silent_seconds / 3600)
        << (s.previous ? " in the period before" : "") << "</li>";
  }
  out << "</ul></li>\n";
  list("Stalled sources", q.stalled, "stalled");
  out << "<li>Unattributed energy over 5 %: " << (q.unattributed.empty() ? "none" : "")
      << " (fleet " << html_escape(percent(q.fleet_unattributed_share)) << ")<ul>";
  for (const auto& u : q.unattributed) {
    out << "<li>" << html_escape(u.host) << ": " << html_escape(percent(u.value)) << "</li>";
  }
  out << "</ul></li>\n</ul>\n<p>Every figure's PromQL is in the JSON scorecard.</p>\n"
      << "</body>\n</html>\n";
}

}  // namespace wattprobe
