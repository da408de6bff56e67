#include "agent/cli/job_report.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "agent/base/flag_args.h"
#include "agent/base/usage_error.h"
#include "agent/base/utc_time.h"
#include "agent/state/job_records.h"

namespace wattprobe {
namespace {

/// The kinds a workload can have (agent/base/workload_id.h).
const std::set<std::string> kKinds{"service", "session", "container", "pod",
                                   "vm",      "kernel",  "system",    "other"};

std::string exact(double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("nan");
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

bool all_measured(const EndedWorkload& j) {
  for (const auto& d : j.domains)
    if (!d.measured) return false;
  return true;
}

/// About four significant digits in `width` characters.
std::string fit(double v, int width) {
  char buf[64];
  if (v == 0) return "0";
  const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(v))));
  for (int decimals = std::clamp(3 - magnitude, 0, 6); decimals >= 0; --decimals) {
    int n = std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    if (n <= width) return buf;
  }
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

std::string cut(const std::string& s, std::size_t width) {
  return s.size() <= width ? s : s.substr(0, width - 1) + "~";
}

void print_table(const std::vector<EndedWorkload>& jobs, std::ostream& out) {
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %-22s %-9s %7s %7s %9s %8s %4s\n", "ended (UTC)",
                "workload", "kind", "dur s", "CPU s", "energy J", "gCO2e", "meas");
  out << line;
  double joules = 0, grams = 0, cpu = 0;
  for (const EndedWorkload& j : jobs) {
    const std::string ended = format_utc_instant(j.ended_ms);
    const double g = j.operational_grams + j.embodied_grams;
    std::snprintf(line, sizeof line, "%-16s %-22s %-9s %7s %7s %9s %8s %4s\n",
                  (ended.substr(0, 10) + " " + ended.substr(11, 5)).c_str(),
                  cut(j.id.workload, 22).c_str(), cut(j.id.kind, 9).c_str(),
                  fit(static_cast<double>(j.last_seen_ms - j.first_seen_ms) / 1000, 7).c_str(),
                  fit(j.cpu_seconds, 7).c_str(), fit(j.host_joules, 9).c_str(), fit(g, 8).c_str(),
                  all_measured(j) ? "yes" : "no");
    out << line;
    joules += j.host_joules;
    grams += g;
    cpu += j.cpu_seconds;
  }
  std::snprintf(line, sizeof line, "%-16s %-22s %-9s %7s %7s %9s %8s\n", "total",
                (std::to_string(jobs.size()) + " jobs").c_str(), "", "", fit(cpu, 7).c_str(),
                fit(joules, 9).c_str(), fit(grams, 8).c_str());
  out << std::string(84, '-') << '\n' << line;
}

void print_csv(const std::vector<EndedWorkload>& jobs, std::ostream& out) {
  out << "workload,kind,namespace,pod,container,first_seen,last_seen,ended,duration_seconds,"
         "cpu_seconds,host_energy_joules,measured,operational_co2e_grams,embodied_co2e_grams,"
         "energy_by_domain,units\n";
  for (const EndedWorkload& j : jobs) {
    std::string domains, units;
    for (const auto& d : j.domains) {
      domains += (domains.empty() ? "" : ";") + d.source + "/" + d.domain + "=" + exact(d.joules);
    }
    for (const auto& [name, count] : j.units) {
      units += (units.empty() ? "" : ";") + name + "=" + exact(count);
    }
    out << csv_field(j.id.workload) << ',' << csv_field(j.id.kind) << ','
        << csv_field(j.id.namespace_) << ',' << csv_field(j.id.pod) << ','
        << csv_field(j.id.container) << ',' << format_utc_instant(j.first_seen_ms) << ','
        << format_utc_instant(j.last_seen_ms) << ',' << format_utc_instant(j.ended_ms) << ','
        << exact(static_cast<double>(j.last_seen_ms - j.first_seen_ms) / 1000) << ','
        << exact(j.cpu_seconds) << ',' << exact(j.host_joules) << ','
        << (all_measured(j) ? "true" : "false") << ',' << exact(j.operational_grams) << ','
        << exact(j.embodied_grams) << ',' << csv_field(domains) << ',' << csv_field(units) << '\n';
  }
}

void print_json(const JobReportOptions& o, const std::vector<EndedWorkload>& jobs,
                std::ostream& out) {
  nlohmann::ordered_json j;
  j["since"] = format_utc_instant(o.since_ms);
  j["until"] = format_utc_instant(o.until_ms);
  if (!o.kind.empty()) j["kind"] = o.kind;
  // Each job exactly as its record holds it (docs/job-records.md).
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  double joules = 0, cpu = 0, op = 0, emb = 0;
  for (const EndedWorkload& job : jobs) {
    list.push_back(nlohmann::ordered_json::parse(job_record_line(job)));
    joules += job.host_joules;
    cpu += job.cpu_seconds;
    op += job.operational_grams;
    emb += job.embodied_grams;
  }
  j["jobs"] = std::move(list);
  j["totals"] = {{"jobs", jobs.size()},
                 {"cpu_seconds", cpu},
                 {"host_energy_joules", joules},
                 {"operational_co2e_grams", op},
                 {"embodied_co2e_grams", emb}};
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

}  // namespace

std::string job_report_help() {
  return "usage: wattprobe report --jobs [--since T] [--until T] [--kind K]\n"
         "                        [--format table|csv|json] [--state-dir DIR]\n"
         "Lists the batch jobs (workloads whose cgroup was removed) that ended in [since, "
         "until),\n"
         "from <state-dir>/jobs/YYYY-MM-DD.jsonl: first and last seen, CPU time, the host "
         "energy\n"
         "counted once, energy by domain, operational and embodied CO2e.\n"
         "  --since T, --until T  as for the ledger report (default -24h and now)\n"
         "  --kind K       only jobs of this kind: service, session, container, pod, vm, kernel,\n"
         "                 system or other\n";
}

JobReportOptions parse_job_report_options(const std::vector<std::string>& args, int64_t now_ms) {
  static const std::set<std::string> kFlags{"since", "until", "kind", "format", "state-dir"};
  std::map<std::string, std::string> given = parse_flag_args(args, kFlags);
  JobReportOptions o;
  const FlagPeriod period = flag_period(given, now_ms);
  o.since_ms = period.since_ms;
  o.until_ms = period.until_ms;
  if (given.count("kind")) {
    if (!kKinds.count(given["kind"])) {
      refuse_flag("kind", given["kind"],
                  "expected service, session, container, pod, vm, kernel, system or other");
    }
    o.kind = given["kind"];
  }
  if (given.count("format")) {
    const std::string& f = given["format"];
    if (f == "table") {
      o.format = JobReportOptions::Format::table;
    } else if (f == "csv") {
      o.format = JobReportOptions::Format::csv;
    } else if (f == "json") {
      o.format = JobReportOptions::Format::json;
    } else {
      refuse_flag("format", f, "expected table, csv or json");
    }
  }
  if (given.count("state-dir")) {
    if (given["state-dir"].empty()) refuse_flag("state-dir", "", "expected a folder");
    o.state_dir = given["state-dir"];
  }
  return o;
}

void print_job_report(const JobReportOptions& o, const std::vector<EndedWorkload>& jobs,
                      std::ostream& out) {
  switch (o.format) {
    case JobReportOptions::Format::csv:
      print_csv(jobs, out);
      return;
    case JobReportOptions::Format::json:
      print_json(o, jobs, out);
      return;
    case JobReportOptions::Format::table:
      break;
  }
  out << "wattprobe report --jobs " << format_utc_instant(o.since_ms) << " to "
      << format_utc_instant(o.until_ms) << (o.kind.empty() ? "" : ", kind " + o.kind) << "\n\n";
  print_table(jobs, out);
}

int run_job_report(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  JobReportOptions o;
  try {
    o = parse_job_report_options(args, wall_clock_ms());
  } catch (const UsageError& e) {
    err << "wattprobe report --jobs: " << e.what() << '\n';
    return 2;
  }
  JobRecordsRead read = read_job_records(o.state_dir, o.since_ms, o.until_ms);
  constexpr std::size_t kMaxNamed = 50;
  for (std::size_t i = 0; i < read.warnings.size() && i < kMaxNamed; ++i) {
    err << "wattprobe report --jobs: skipped " << read.warnings[i] << '\n';
  }
  if (read.warnings.size() > kMaxNamed) {
    err << "wattprobe report --jobs: skipped " << read.warnings.size() - kMaxNamed
        << " more malformed lines\n";
  }
  std::vector<EndedWorkload> jobs;
  for (EndedWorkload& j : read.jobs) {
    if (o.kind.empty() || j.id.kind == o.kind) jobs.push_back(std::move(j));
  }
  if (jobs.empty()) {
    err << "wattprobe report --jobs: no job ended in [" << format_utc_instant(o.since_ms) << ", "
        << format_utc_instant(o.until_ms) << ")" << (o.kind.empty() ? "" : " of kind " + o.kind)
        << " under " << (o.state_dir / "jobs").string() << '\n';
    return 1;
  }
  print_job_report(o, jobs, out);
  return 0;
}

}  // namespace wattprobe
