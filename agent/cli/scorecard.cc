#include "agent/cli/scorecard.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <string_view>

#include "agent/base/duration.h"
#include "agent/base/flag_args.h"
#include "agent/base/option_table.h"
#include "agent/base/secret_file.h"
#include "agent/base/utc_time.h"
#include "agent/cli/scorecard_render.h"

namespace wattprobe {
namespace {

constexpr const char* kOperational = "wattprobe_workload_operational_co2e_grams_total";
constexpr const char* kEmbodied = "wattprobe_workload_embodied_co2e_grams_total";
constexpr const char* kHostEnergy = "wattprobe_workload_host_energy_joules_total";
constexpr const char* kWorkloadEnergy = "wattprobe_workload_energy_joules_total";
constexpr const char* kCpu = "wattprobe_workload_cpu_seconds_total";
constexpr const char* kUnits = "wattprobe_workload_functional_units_total";
constexpr double kSecondsPerYear = 365.25 * 86400;

/// A scorecard refusal (exit 2), worded as the other commands word theirs.
[[noreturn]] void bad(const std::string& flag, const std::string& value, const std::string& why) {
  throw ScorecardUsageError("invalid value \"" + value + "\" for --" + flag + ": " + why);
}

/// Label names go into PromQL verbatim, so only Prometheus's own label-name syntax passes.
bool is_label_name(std::string_view s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

/// 1 Nov 2026 → 1 Oct 2026: the first day of the month `months` away from (year, month).
int64_t month_start_ms(int year, int month) {
  while (month < 1) {
    month += 12;
    --year;
  }
  while (month > 12) {
    month -= 12;
    ++year;
  }
  char text[16];
  std::snprintf(text, sizeof text, "%04d-%02d-01", year, month);
  return *parse_utc_date(text);
}

bool parse_month(std::string_view text, int& year, int& month) {
  if (text.size() != 7 || text[4] != '-') return false;
  for (std::size_t i : {0u, 1u, 2u, 3u, 5u, 6u}) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
  }
  year = std::stoi(std::string(text.substr(0, 4)));
  month = std::stoi(std::string(text.substr(5, 2)));
  return year >= 1970 && month >= 1 && month <= 12;
}

std::string read_secret(const std::string& flag, const std::string& given) {
  // A systemd unit's LoadCredential= files, named the same way the agent's own options take them.
  auto path = expand_credentials_directory(given);
  if (!path.ok()) bad(flag, given, path.error().message());
  auto secret = read_secret_file(*path);
  if (!secret.ok()) bad(flag, given, secret.error().message());
  return *secret;
}

std::string range(int64_t start_ms, int64_t end_ms) {
  return "[" + std::to_string((end_ms - start_ms) / 1000) + "s]";
}

/// A host name inside a PromQL regex inside a PromQL string: regex metacharacters escaped,
/// then the string's own backslashes and quotes.
std::string regex_literal(const std::string& text) {
  std::string re;
  for (char c : text) {
    if (std::string_view(".^$*+?()[]{}|\\").find(c) != std::string_view::npos) re += '\\';
    re += c;
  }
  std::string out;
  for (char c : re) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

/// `family{host=~"a|b|..."}` selectors over `hosts`, 50 to a selector, so a query about the few
/// hosts a first query found stays short whatever the fleet's size.
std::vector<std::string> host_selectors(const std::string& family, const std::string& host_label,
                                        std::vector<std::string> hosts) {
  std::sort(hosts.begin(), hosts.end());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < hosts.size(); i += 50) {
    std::string alternatives;
    for (std::size_t k = i; k < hosts.size() && k < i + 50; ++k) {
      alternatives += (alternatives.empty() ? "" : "|") + regex_literal(hosts[k]);
    }
    out.push_back(family + "{" + host_label + "=~\"" + alternatives + "\"}");
  }
  return out;
}

struct Asker {
  PromClient& client;
  Scorecard& card;

  /// One query; an error names the figure, the query and the reason.
  Result<PromAnswer> ask(const std::string& figure, const std::string& promql, int64_t time_ms) {
    auto answer = client.instant(promql, time_ms);
    if (!answer.ok()) {
      Error e = answer.error();
      e.detail +=
          " (figure " + figure + ", query: " + promql + " at " + format_utc_instant(time_ms) + ")";
      return e;
    }
    card.queries.push_back(
        QueryRecord{figure, promql, time_ms, answer->samples.size(), answer->warnings});
    return answer;
  }
};

#define SC_TRY(var, expr) \
  auto var = (expr);      \
  if (!var.ok()) return var.error()

std::string group_of(const PromSample& s, const std::string& label) {
  auto it = s.labels.find(label);
  return it == s.labels.end() ? std::string() : it->second;
}

std::string label_of(const PromSample& s, const std::string& label) { return group_of(s, label); }

}  // namespace

std::string scorecard_help() {
  return "usage: wattprobe scorecard --prometheus URL [--month YYYY-MM | --since T --until T]\n"
         "                           [--by namespace|kind|workload|LABEL] [--out DIR]\n"
         "                           [--format md|html|json] [options]\n"
         "The fleet's carbon scorecard for a period and the one before, asked of any server with\n"
         "Prometheus's query API (Prometheus, Thanos Query, Mimir, VictoriaMetrics): grams and\n"
         "energy per group, intensity per unit of work, the top drivers, every change split into\n"
         "energy, grid intensity and embodied terms, budgets, hardware and data quality.\n"
         "  --prometheus URL   the server's base URL (its /api/v1/query is asked)\n"
         "  --month YYYY-MM    the calendar month (default: the last full month); the one before\n"
         "                     is the period compared with\n"
         "  --since T --until T  instead of --month (the forms of `report`); compared with the\n"
         "                     period of the same length before\n"
         "  --by G             namespace (default), kind, workload, or any label the series carry\n"
         "  --join-pod-labels L  join kube-state-metrics' kube_pod_labels' label_L onto pod "
         "series\n"
         "                     (by namespace and pod); --by L then groups by it (the default)\n"
         "  --host-label L     the label naming a host (default instance)\n"
         "  --format F         md (default), html or json, to standard output\n"
         "  --out DIR          write scorecard-<period>.{md,html,json} into DIR instead\n"
         "  --top N            drivers listed (default 5)\n"
         "  --prometheus-ca-file F, --prometheus-bearer-token-file F,\n"
         "  --prometheus-basic-auth-user-file F, --prometheus-basic-auth-password-file F\n"
         "  --timeout D        per query (default 60s)\n"
         "  --replacement-embodied-kg KG --replacement-power-ratio R  keep-or-replace inputs for\n"
         "                     hosts past their amortization\n"
         "Exit 0, 1 when the server fails or lacks the families (the reason and the query are\n"
         "printed), 2 on a usage error.\n";
}

ScorecardOptions parse_scorecard_options(const std::vector<std::string>& args, int64_t now_ms) {
  static const std::set<std::string> kFlags{"prometheus",
                                            "month",
                                            "since",
                                            "until",
                                            "by",
                                            "join-pod-labels",
                                            "host-label",
                                            "format",
                                            "out",
                                            "top",
                                            "timeout",
                                            "prometheus-ca-file",
                                            "prometheus-bearer-token-file",
                                            "prometheus-basic-auth-user-file",
                                            "prometheus-basic-auth-password-file",
                                            "replacement-embodied-kg",
                                            "replacement-power-ratio"};
  std::map<std::string, std::string> given = parse_flag_args(args, kFlags);
  ScorecardOptions o;
  if (!given.count("prometheus")) throw ScorecardUsageError("--prometheus URL is required");
  o.prometheus.url = given["prometheus"];
  if (o.prometheus.url.rfind("http://", 0) != 0 && o.prometheus.url.rfind("https://", 0) != 0) {
    bad("prometheus", o.prometheus.url, "expected an http:// or https:// URL");
  }
  if (url_has_credentials(o.prometheus.url)) {
    throw ScorecardUsageError(
        "--prometheus: credentials in the URL are refused; use "
        "--prometheus-basic-auth-user-file and --prometheus-basic-auth-password-file");
  }
  if (given.count("month") && (given.count("since") || given.count("until"))) {
    throw ScorecardUsageError("--month and --since/--until exclude each other");
  }
  if (given.count("since") != given.count("until")) {
    throw ScorecardUsageError("--since and --until go together");
  }
  if (given.count("since")) {
    const char* forms = "expected 2026-11-23T10:00:00Z, 2026-11-23, now, or -24h (before now)";
    auto since = parse_utc_time_or_ago(given["since"], now_ms);
    if (!since) bad("since", given["since"], forms);
    auto until = parse_utc_time_or_ago(given["until"], now_ms);
    if (!until) bad("until", given["until"], forms);
    // Whole seconds: the range selector and the evaluation time are sent in seconds.
    o.start_ms = *since / 1000 * 1000;
    o.end_ms = *until / 1000 * 1000;
    if (o.end_ms - o.start_ms < 1000) bad("since", given["since"], "must be before --until");
    o.previous_end_ms = o.start_ms;
    o.previous_start_ms = o.start_ms - (o.end_ms - o.start_ms);
    o.period_name = format_utc_instant(o.start_ms) + "_" + format_utc_instant(o.end_ms);
  } else {
    int year = 0, month = 0;
    if (given.count("month")) {
      if (!parse_month(given["month"], year, month)) {
        bad("month", given["month"], "expected YYYY-MM, e.g. 2026-11");
      }
    } else {
      std::string today = format_utc_date(now_ms);
      year = std::stoi(today.substr(0, 4));
      month = std::stoi(today.substr(5, 2)) - 1;
      if (month == 0) {
        month = 12;
        --year;
      }
    }
    o.start_ms = month_start_ms(year, month);
    o.end_ms = month_start_ms(year, month + 1);
    o.previous_start_ms = month_start_ms(year, month - 1);
    o.previous_end_ms = o.start_ms;
    char name[16];
    std::snprintf(name, sizeof name, "%04d-%02d", year, month);
    o.period_name = name;
  }
  if (given.count("join-pod-labels")) {
    o.join_pod_label = given["join-pod-labels"];
    if (!is_label_name(o.join_pod_label)) {
      bad("join-pod-labels", o.join_pod_label, "not a label name");
    }
    o.by = o.join_pod_label;
  }
  if (given.count("by")) {
    o.by = given["by"];
    if (!is_label_name(o.by)) bad("by", o.by, "not a label name");
  }
  if (given.count("host-label")) {
    o.host_label = given["host-label"];
    if (!is_label_name(o.host_label)) bad("host-label", o.host_label, "not a label name");
  }
  static const std::vector<Choice<ScorecardOptions::Format>> formats{
      {"md", ScorecardOptions::Format::md},
      {"html", ScorecardOptions::Format::html},
      {"json", ScorecardOptions::Format::json}};
  if (given.count("format")) {
    auto format = value_of(formats, given["format"]);
    if (!format) bad("format", given["format"], "expected " + words_of(formats));
    o.format = *format;
  }
  if (given.count("out")) o.out_dir = given["out"];
  if (given.count("top")) {
    const std::string& t = given["top"];
    if (t.empty() || t.size() > 4 || !std::all_of(t.begin(), t.end(), ::isdigit) || t == "0") {
      bad("top", t, "expected a whole number from 1 to 9999");
    }
    o.top = std::stoul(t);
  }
  if (given.count("timeout")) {
    auto d = parse_duration(given["timeout"]);
    if (!d || d->count() < 1000 || d->count() > 3'600'000) {
      bad("timeout", given["timeout"], "expected a duration from 1s to 1h, e.g. 60s or 2m");
    }
    o.prometheus.timeout_s = d->count() / 1000.0;
  }
  if (given.count("prometheus-ca-file")) {
    o.prometheus.ca_file = given["prometheus-ca-file"];
    std::error_code ec;
    if (!std::filesystem::is_regular_file(o.prometheus.ca_file, ec)) {
      bad("prometheus-ca-file", o.prometheus.ca_file, "not a readable file");
    }
  }
  if (given.count("prometheus-bearer-token-file")) {
    o.prometheus.bearer_token =
        read_secret("prometheus-bearer-token-file", given["prometheus-bearer-token-file"]);
  }
  if (given.count("prometheus-basic-auth-user-file") !=
      given.count("prometheus-basic-auth-password-file")) {
    throw ScorecardUsageError(
        "--prometheus-basic-auth-user-file and --prometheus-basic-auth-password-file go together");
  }
  if (given.count("prometheus-basic-auth-user-file")) {
    if (given.count("prometheus-bearer-token-file")) {
      throw ScorecardUsageError("a bearer token and basic auth exclude each other");
    }
    o.prometheus.basic_user =
        read_secret("prometheus-basic-auth-user-file", given["prometheus-basic-auth-user-file"]);
    o.prometheus.basic_password = read_secret("prometheus-basic-auth-password-file",
                                              given["prometheus-basic-auth-password-file"]);
  }
  auto positive = [&](const std::string& flag) {
    const std::string& v = given[flag];
    char* end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !std::isfinite(x) || x < 0) {
      bad(flag, v, "expected a number, 0 or more");
    }
    return x;
  };
  if (given.count("replacement-embodied-kg") != given.count("replacement-power-ratio")) {
    throw ScorecardUsageError(
        "--replacement-embodied-kg and --replacement-power-ratio go together");
  }
  if (given.count("replacement-embodied-kg")) {
    o.replacement_embodied_kg = positive("replacement-embodied-kg");
    o.replacement_power_ratio = positive("replacement-power-ratio");
  }
  return o;
}

std::string scorecard_group_query(const ScorecardOptions& o, const std::string& per_series,
                                  const std::string& extra_labels) {
  const std::string extra = extra_labels.empty() ? "" : ", " + extra_labels;
  if (o.join_pod_label.empty()) return "sum by (" + o.by + extra + ") (" + per_series + ")";
  // The pod's label from kube-state-metrics, one value per pod (a pod relabelled during the
  // period takes one of its values), joined on namespace and pod; series of no pod (services,
  // the kernel) keep an empty group through `or`.
  const std::string l = "label_" + o.join_pod_label;
  const std::string group = o.by == o.join_pod_label ? l : o.by;
  const std::string labels = "topk by (namespace, pod) (1, max by (namespace, pod, " + l +
                             ") (last_over_time(kube_pod_labels{" + l + "!=\"\"}" +
                             range(o.start_ms, o.end_ms) + ")))";
  return "sum by (" + group + extra + ") ((" + per_series + ") * on (namespace, pod) group_left(" +
         l + ") " + labels + " or on (namespace, pod) (" + per_series + "))";
}

namespace {

/// The options for one period: the same questions, at its end, over its length.
ScorecardOptions for_period(const ScorecardOptions& o, bool previous) {
  ScorecardOptions p = o;
  if (previous) {
    p.start_ms = o.previous_start_ms;
    p.end_ms = o.previous_end_ms;
  }
  return p;
}

std::string group_label(const ScorecardOptions& o) {
  return !o.join_pod_label.empty() && o.by == o.join_pod_label ? "label_" + o.join_pod_label : o.by;
}

/// A workload's energy over the non-overlapping domains, per host: the host-energy family where
/// the host exports it, else psys, else package + dram + gpu. `matcher` narrows the workload
/// family (e.g. measured="true"); `with_host` false leaves the host family out.
std::string energy_query(const ScorecardOptions& o, const std::string& matcher, bool with_host) {
  const std::string r = range(o.start_ms, o.end_ms);
  const std::string extra = matcher.empty() ? "" : ", " + matcher;
  auto branch = [&](const std::string& series) {
    return scorecard_group_query(o, "increase(" + series + r + ")", o.host_label);
  };
  std::string q;
  if (with_host) q = branch(std::string(kHostEnergy)) + " or ";
  q += branch(std::string(kWorkloadEnergy) + "{domain=\"psys\"" + extra + "}") + " or " +
       branch(std::string(kWorkloadEnergy) + "{domain=~\"package|dram|gpu\"" + extra + "}");
  return "sum by (" + group_label(o) + ") (" + q + ")";
}

std::string node_query(const std::string& family, const ScorecardOptions& o) {
  const std::string r = range(o.start_ms, o.end_ms);
  const std::string h = o.host_label;
  return "sum by (" + h + ") (increase(" + family + "{domain=\"psys\"}" + r + ")) or sum by (" + h +
         ") (increase(" + family + "{domain=~\"package|dram|gpu\"}" + r + "))";
}

Result<bool> gather_groups(const ScorecardOptions& o, bool previous, Asker& asker,
                           std::map<std::string, GroupFigures>& groups, bool& any_energy) {
  const ScorecardOptions p = for_period(o, previous);
  const std::string suffix = previous ? "/previous" : "/current";
  const std::string r = range(p.start_ms, p.end_ms);
  const std::string g = group_label(o);
  auto figures = [&](GroupFigures& gf) -> PeriodFigures& {
    return previous ? gf.previous : gf.current;
  };
  auto fill = [&](const std::string& figure, const std::string& promql,
                  double PeriodFigures::*field) -> Result<std::size_t> {
    SC_TRY(answer, asker.ask(figure + suffix, promql, p.end_ms));
    for (const auto& s : answer->samples) {
      GroupFigures& gf = groups[group_of(s, g)];
      figures(gf).*field += s.value;
      for (const auto& w : answer->warnings) {
        gf.lower_bound.push_back("partial answer for " + figure + suffix + ": " + w);
      }
    }
    return answer->samples.size();
  };
  SC_TRY(op, fill("operational_grams",
                  scorecard_group_query(p, "increase(" + std::string(kOperational) + r + ")"),
                  &PeriodFigures::operational_grams));
  (void)op;
  SC_TRY(emb, fill("embodied_grams",
                   scorecard_group_query(p, "increase(" + std::string(kEmbodied) + r + ")"),
                   &PeriodFigures::embodied_grams));
  SC_TRY(energy, fill("energy_joules", energy_query(p, "", true), &PeriodFigures::energy_joules));
  if (*energy > 0) any_energy = true;
  SC_TRY(comp,
         fill("component_joules", energy_query(p, "", false), &PeriodFigures::component_joules));
  SC_TRY(meas, fill("measured_joules", energy_query(p, "measured=\"true\"", false),
                    &PeriodFigures::measured_joules));
  SC_TRY(cpu,
         fill("cpu_seconds", scorecard_group_query(p, "increase(" + std::string(kCpu) + r + ")"),
              &PeriodFigures::cpu_seconds));
  const std::string units_q =
      scorecard_group_query(p, "increase(" + std::string(kUnits) + r + ")", "unit");
  SC_TRY(units, asker.ask("units" + suffix, units_q, p.end_ms));
  for (const auto& s : units->samples) {
    GroupFigures& gf = groups[group_of(s, g)];
    figures(gf).units[label_of(s, "unit")] += s.value;
  }
  return true;
}

/// Hosts with series in the period but none in its last 15 minutes, with when they were last
/// seen: two queries, the second only over the hosts the first found. The period before gets
/// the same, so a lower bound there is said too.
Result<bool> gather_stopped(const ScorecardOptions& o, bool previous, Asker& asker, int64_t now_ms,
                            std::map<std::string, GroupFigures>& groups) {
  const ScorecardOptions p = for_period(o, previous);
  const std::string suffix = previous ? "/previous" : "/current";
  const int64_t at = std::min(p.end_ms, now_ms / 1000 * 1000);
  const std::string h = o.host_label;
  const std::string r = range(p.start_ms, at);
  const std::string op = kOperational;
  SC_TRY(gone, asker.ask("stopped_hosts" + suffix,
                         "count by (" + h + ") (last_over_time(" + op + r + ")) unless on (" + h +
                             ") count by (" + h + ") (last_over_time(" + op + "[15m]))",
                         at));
  std::vector<std::string> hosts;
  for (const auto& s : gone->samples) hosts.push_back(label_of(s, h));
  for (const std::string& sel : host_selectors(op, h, hosts)) {
    SC_TRY(last, asker.ask("stopped_hosts_last_seen" + suffix,
                           "max by (" + h + ") (max_over_time(timestamp(" + sel + ")" +
                               r.substr(0, r.size() - 1) + ":1m]))",
                           at));
    std::map<std::string, int64_t> seen;
    for (const auto& s : last->samples) {
      StoppedHost sh;
      sh.host = label_of(s, h);
      sh.last_seen_ms = static_cast<int64_t>(s.value * 1000);
      sh.gap_seconds = (at - sh.last_seen_ms) / 1000.0;
      sh.previous = previous;
      seen[sh.host] = sh.last_seen_ms;
      asker.card.quality.stopped.push_back(sh);
    }
    SC_TRY(affected,
           asker.ask("stopped_hosts_groups" + suffix,
                     scorecard_group_query(p, "count_over_time(" + sel + r + ")", h), at));
    for (const auto& s : affected->samples) {
      const std::string host = label_of(s, h);
      const std::string when = seen.count(host) ? format_utc_instant(seen[host]) : "?";
      groups[group_of(s, group_label(o))].lower_bound.push_back(
          "host " + host + " stopped reporting at " + when +
          (previous ? " (in the period before)" : ""));
    }
  }
  return true;
}

/// Hosts silent for a stretch inside the period that came back before its end: one query for
/// the fleet. At hourly steps a host is present when it had a sample in the
/// kSilentWindowSeconds before; the steps it missed between its first and last presence, plus
/// that window, are how long it was silent (±1 h). Then, only for the hosts found, which groups
/// they carry, whose figures become lower bounds: the agent may have been down, not only the
/// scrape.
Result<bool> gather_silent(const ScorecardOptions& o, bool previous, Asker& asker, int64_t now_ms,
                           std::map<std::string, GroupFigures>& groups) {
  const ScorecardOptions p = for_period(o, previous);
  const std::string suffix = previous ? "/previous" : "/current";
  const int64_t at = std::min(p.end_ms, now_ms / 1000 * 1000);
  if (at <= p.start_ms) return true;
  const std::string h = o.host_label;
  const std::string r = range(p.start_ms, at);
  const std::string hourly = r.substr(0, r.size() - 1) + ":1h]";
  const std::string present = "(count by (" + h + ") (last_over_time(" + kOperational + "[" +
                              std::to_string(kSilentWindowSeconds) + "s])))";
  SC_TRY(missed, asker.ask("silent_hosts" + suffix,
                           "(max_over_time(timestamp" + present + hourly +
                               ") - min_over_time(timestamp" + present + hourly +
                               ") + 3600 - 3600 * count_over_time(" + present + hourly + ")) > 0",
                           at));
  std::vector<std::string> hosts;
  for (const auto& s : missed->samples) {
    SilentHost sh;
    sh.host = label_of(s, h);
    sh.silent_seconds = s.value + kSilentWindowSeconds;
    sh.previous = previous;
    hosts.push_back(sh.host);
    asker.card.quality.silent.push_back(sh);
  }
  for (const std::string& sel : host_selectors(kOperational, h, hosts)) {
    SC_TRY(affected,
           asker.ask("silent_hosts_groups" + suffix,
                     scorecard_group_query(p, "count_over_time(" + sel + r + ")", h), at));
    for (const auto& s : affected->samples) {
      const std::string host = label_of(s, h);
      auto it = std::find_if(asker.card.quality.silent.begin(), asker.card.quality.silent.end(),
                             [&](const SilentHost& x) { return x.host == host; });
      const double hours = it == asker.card.quality.silent.end() ? 0 : it->silent_seconds / 3600;
      groups[group_of(s, group_label(o))].lower_bound.push_back(
          "host " + host + " was silent for about " + std::to_string(std::lround(hours)) +
          " h within the " + (previous ? "period before" : "period"));
    }
  }
  return true;
}

Result<bool> gather_budgets(const ScorecardOptions& o, Asker& asker) {
  const std::string r = range(o.start_ms, o.end_ms);
  const std::string by = "workload, kind, window";
  SC_TRY(budget, asker.ask("budget_grams",
                           "sum by (" + by +
                               ") (max_over_time(wattprobe_workload_carbon_budget_grams" + r + "))",
                           o.end_ms));
  if (budget->samples.empty()) return true;
  SC_TRY(peak, asker.ask("budget_peak_window_grams",
                         "sum by (" + by +
                             ") (max_over_time(wattprobe_workload_carbon_budget_consumption_grams" +
                             r + "))",
                         o.end_ms));
  auto used_q = [&](const char* family) {
    return "sum by (workload, kind, window) (sum by (workload, kind, " + o.host_label +
           ") (increase(" + std::string(family) + r + ")) * on (workload, kind, " + o.host_label +
           ") group_right max by (workload, kind, " + o.host_label +
           ", window) (max_over_time(wattprobe_workload_carbon_budget_grams" + r + ") * 0 + 1))";
  };
  SC_TRY(used_op, asker.ask("budget_used_operational_grams", used_q(kOperational), o.end_ms));
  SC_TRY(used_emb, asker.ask("budget_used_embodied_grams", used_q(kEmbodied), o.end_ms));
  auto key = [](const PromSample& s) {
    return label_of(s, "workload") + "\n" + label_of(s, "kind") + "\n" + label_of(s, "window");
  };
  std::map<std::string, BudgetUse> uses;
  const double period_s = (o.end_ms - o.start_ms) / 1000.0;
  for (const auto& s : budget->samples) {
    BudgetUse& u = uses[key(s)];
    u.workload = label_of(s, "workload");
    u.kind = label_of(s, "kind");
    u.window = label_of(s, "window");
    u.budget_grams = s.value;
    const double window_s = u.window == "day" ? 86400 : u.window == "30d" ? 30 * 86400 : 0;
    u.allowance_grams = window_s > 0 ? s.value * period_s / window_s : 0;
  }
  for (const auto& s : peak->samples) {
    if (auto it = uses.find(key(s)); it != uses.end()) it->second.peak_window_grams = s.value;
  }
  for (const auto* answer : {&*used_op, &*used_emb}) {
    for (const auto& s : answer->samples) {
      if (auto it = uses.find(key(s)); it != uses.end()) it->second.used_grams += s.value;
    }
  }
  for (auto& [k, u] : uses) asker.card.budgets.push_back(u);
  return true;
}

Result<bool> gather_hardware(const ScorecardOptions& o, Asker& asker) {
  const std::string r = range(o.start_ms, o.end_ms);
  const std::string h = o.host_label;
  Hardware& hw = asker.card.hardware;
  const std::string past =
      "(max by (" + h + ") (last_over_time(wattprobe_device_amortized_ratio" + r + ")) >= 1)";
  SC_TRY(amortized, asker.ask("hosts_past_amortization", past, o.end_ms));
  SC_TRY(age, asker.ask("hosts_past_amortization_age_seconds",
                        "max by (" + h + ") (last_over_time(wattprobe_device_age_seconds" + r +
                            ")) and on (" + h + ") " + past,
                        o.end_ms));
  std::map<std::string, double> ages;
  for (const auto& s : age->samples) ages[label_of(s, h)] = s.value;
  for (const auto& s : amortized->samples) {
    const std::string host = label_of(s, h);
    char note[64] = "";
    if (ages.count(host))
      std::snprintf(note, sizeof note, "%.1f years old", ages[host] / kSecondsPerYear);
    hw.past_amortization.push_back({host, "", s.value, note});
  }
  SC_TRY(bat, asker.ask("batteries_under_80_percent",
                        "min by (" + h + ", battery) (last_over_time(" +
                            "wattprobe_device_battery_capacity_ratio" + r + ")) < 0.8",
                        o.end_ms));
  for (const auto& s : bat->samples) {
    hw.batteries_worn.push_back({label_of(s, h), label_of(s, "battery"), s.value, ""});
  }
  SC_TRY(wear, asker.ask("nvme_over_80_percent_wear",
                         "max by (" + h + ", device, model) (last_over_time(" +
                             "wattprobe_device_storage_wear_ratio" + r + ")) > 0.8",
                         o.end_ms));
  for (const auto& s : wear->samples) {
    hw.drives_worn.push_back(
        {label_of(s, h), label_of(s, "device"), s.value, label_of(s, "model")});
  }
  SC_TRY(throttle, asker.ask("hosts_throttled",
                             "sum by (" + h + ") (increase(" +
                                 "wattprobe_device_thermal_throttle_events_total" + r + ")) > 0",
                             o.end_ms));
  for (const auto& s : throttle->samples) hw.throttled.push_back({label_of(s, h), "", s.value, ""});
  auto by_host = [&](HostFinding a, HostFinding b) { return a.host < b.host; };
  for (auto* list : {&hw.past_amortization, &hw.batteries_worn, &hw.drives_worn, &hw.throttled}) {
    std::sort(list->begin(), list->end(), by_host);
  }
  if (!o.replacement_embodied_kg) {
    hw.keep_or_replace_inputs =
        "give --replacement-embodied-kg and --replacement-power-ratio for a keep-or-replace "
        "answer on the hosts past their amortization";
    return true;
  }
  if (amortized->samples.empty()) return true;
  SC_TRY(op, asker.ask("keep_or_replace_operational_grams",
                       "sum by (" + h + ") (increase(" + std::string(kOperational) + r +
                           ")) and on (" + h + ") " + past,
                       o.end_ms));
  const double years = (o.end_ms - o.start_ms) / 1000.0 / kSecondsPerYear;
  for (const auto& s : op->samples) {
    KeepOrReplace k;
    k.host = label_of(s, h);
    const double per_year = s.value / years;
    // Past its amortization, keeping the host a year adds no embodied grams of its own.
    k.keep_grams = per_year;
    k.replace_grams = *o.replacement_embodied_kg * 1000 + per_year * *o.replacement_power_ratio;
    k.answer = k.replace_grams < k.keep_grams ? "replace" : "keep";
    hw.keep_or_replace.push_back(k);
  }
  std::sort(hw.keep_or_replace.begin(), hw.keep_or_replace.end(),
            [](const KeepOrReplace& a, const KeepOrReplace& b) { return a.host < b.host; });
  return true;
}

Result<bool> gather_quality(const ScorecardOptions& o, Asker& asker) {
  const std::string r = range(o.start_ms, o.end_ms);
  const std::string h = o.host_label;
  DataQuality& q = asker.card.quality;
  SC_TRY(stalled, asker.ask("stalled_sources",
                            "count by (" + h + ", source, domain) (last_over_time(" +
                                "wattprobe_energy_source_info{state=\"stalled\"}" + r + "))",
                            o.end_ms));
  for (const auto& s : stalled->samples) {
    q.stalled.push_back(
        {label_of(s, h), label_of(s, "source") + "/" + label_of(s, "domain"), 1, ""});
  }
  SC_TRY(unattributed,
         asker.ask("unattributed_joules",
                   node_query("wattprobe_node_unattributed_energy_joules_total", o), o.end_ms));
  SC_TRY(node,
         asker.ask("node_joules", node_query("wattprobe_node_energy_joules_total", o), o.end_ms));
  std::map<std::string, double> node_j;
  double fleet_node = 0, fleet_unattributed = 0;
  for (const auto& s : node->samples) {
    node_j[label_of(s, h)] += s.value;
    fleet_node += s.value;
  }
  for (const auto& s : unattributed->samples) {
    fleet_unattributed += s.value;
    const double total = node_j[label_of(s, h)];
    if (total > 0 && s.value / total > 0.05) {
      q.unattributed.push_back({label_of(s, h), "", s.value / total, ""});
    }
  }
  q.fleet_unattributed_share = fleet_node > 0 ? fleet_unattributed / fleet_node : 0;
  std::sort(q.stalled.begin(), q.stalled.end(), [](const HostFinding& a, const HostFinding& b) {
    return a.host != b.host ? a.host < b.host : a.item < b.item;
  });
  std::sort(q.unattributed.begin(), q.unattributed.end(),
            [](const HostFinding& a, const HostFinding& b) { return a.host < b.host; });
  return true;
}

}  // namespace

Result<Scorecard> gather_scorecard(const ScorecardOptions& o, PromClient& client, int64_t now_ms) {
  Scorecard card;
  card.by = o.by;
  card.period_name = o.period_name;
  card.start_ms = o.start_ms;
  card.end_ms = o.end_ms;
  card.previous_start_ms = o.previous_start_ms;
  card.previous_end_ms = o.previous_end_ms;
  Asker asker{client, card};
  std::map<std::string, GroupFigures> groups;
  bool any_energy = false;
  SC_TRY(current, gather_groups(o, false, asker, groups, any_energy));
  SC_TRY(previous, gather_groups(o, true, asker, groups, any_energy));
  if (groups.empty()) {
    return Error{ErrorKind::absent, redact_url(o.prometheus.url),
                 std::string("no series of ") + kOperational +
                     " in either period (query: " + card.queries.front().promql + " at " +
                     format_utc_instant(card.queries.front().time_ms) + ")"};
  }
  if (!any_energy) {
    auto q = std::find_if(card.queries.begin(), card.queries.end(),
                          [](const QueryRecord& r) { return r.figure == "energy_joules/current"; });
    return Error{ErrorKind::absent, redact_url(o.prometheus.url),
                 std::string("no series of ") + kHostEnergy + " or " + kWorkloadEnergy +
                     " in either period (query: " + q->promql + ")"};
  }
  SC_TRY(stopped, gather_stopped(o, false, asker, now_ms, groups));
  SC_TRY(stopped_before, gather_stopped(o, true, asker, now_ms, groups));
  SC_TRY(silent, gather_silent(o, false, asker, now_ms, groups));
  SC_TRY(silent_before, gather_silent(o, true, asker, now_ms, groups));
  SC_TRY(budgets, gather_budgets(o, asker));
  SC_TRY(hardware, gather_hardware(o, asker));
  SC_TRY(quality, gather_quality(o, asker));
  bool units = false;
  for (auto& [name, gf] : groups) {
    gf.group = name;
    std::sort(gf.lower_bound.begin(), gf.lower_bound.end());
    gf.lower_bound.erase(std::unique(gf.lower_bound.begin(), gf.lower_bound.end()),
                         gf.lower_bound.end());
    if (!gf.current.units.empty() || !gf.previous.units.empty()) units = true;
    card.groups.push_back(gf);
  }
  card.energy_basis =
      "per host: " + std::string(kHostEnergy) +
      " where exported, else the workload energy of psys, else of package + dram + gpu";
  card.intensity_basis = units ? "functional units (CPU-hours for groups without)" : "CPU-hours";
  finish_scorecard(card);
  return card;
}

int run_scorecard(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    out << scorecard_help();
    return 0;
  }
  const int64_t now = wall_clock_ms();
  ScorecardOptions o;
  try {
    o = parse_scorecard_options(args, now);
  } catch (const ScorecardUsageError& e) {
    err << "wattprobe scorecard: " << e.what() << '\n';
    return 2;
  }
  PromClient client(o.prometheus);
  auto card = gather_scorecard(o, client, now);
  if (!card.ok()) {
    err << "wattprobe scorecard: " << card.error().message() << '\n';
    return 1;
  }
  if (card->partial()) {
    err << "wattprobe scorecard: warning: the server gave a partial answer; the figures built "
           "from it are marked\n";
  }
  if (o.out_dir.empty()) {
    switch (o.format) {
      case ScorecardOptions::Format::md:
        render_scorecard_markdown(*card, o.top, out);
        break;
      case ScorecardOptions::Format::html:
        render_scorecard_html(*card, o.top, out);
        break;
      case ScorecardOptions::Format::json:
        render_scorecard_json(*card, o.top, out);
        break;
    }
    return 0;
  }
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  const std::string stem = o.out_dir + "/scorecard-" + card->period_name;
  for (const char* ext : {".md", ".html", ".json"}) {
    const std::string path = stem + ext;
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      if (std::string_view(ext) == ".md") render_scorecard_markdown(*card, o.top, f);
      if (std::string_view(ext) == ".html") render_scorecard_html(*card, o.top, f);
      if (std::string_view(ext) == ".json") render_scorecard_json(*card, o.top, f);
      f.flush();
      if (!f) {
        err << "wattprobe scorecard: cannot write " << tmp << '\n';
        return 1;
      }
    }
    // Readers of a shared folder see the old file or the new one, never half of one.
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      err << "wattprobe scorecard: cannot write " << path << ": " << ec.message() << '\n';
      return 1;
    }
    out << path << '\n';
  }
  return 0;
}

#undef SC_TRY

}  // namespace wattprobe
