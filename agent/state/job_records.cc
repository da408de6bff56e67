#include "agent/state/job_records.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"
#include "agent/state/day_files.h"

namespace wattprobe {
namespace {

/// When the cap is passed, the file being trimmed keeps this share of it, so that a full cap is
/// not rewritten on every record that follows.
constexpr double kTrimTo = 0.75;

std::string job_json(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace

std::string job_record_line(const EndedWorkload& job) {
  nlohmann::ordered_json j;
  j["v"] = kJobRecordSchemaVersion;
  j["workload"] = job.id.workload;
  j["kind"] = job.id.kind;
  if (!job.id.namespace_.empty()) j["namespace"] = job.id.namespace_;
  if (!job.id.pod.empty()) j["pod"] = job.id.pod;
  if (!job.id.container.empty()) j["container"] = job.id.container;
  j["first_seen"] = format_utc_instant(job.first_seen_ms);
  j["last_seen"] = format_utc_instant(job.last_seen_ms);
  j["ended"] = format_utc_instant(job.ended_ms);
  j["duration_seconds"] =
      static_cast<double>(std::max<int64_t>(0, job.last_seen_ms - job.first_seen_ms)) / 1000.0;
  j["cpu_seconds"] = job.cpu_seconds;
  bool measured = true;
  nlohmann::ordered_json energy = nlohmann::ordered_json::array();
  for (const EndedWorkload::Domain& d : job.domains) {
    nlohmann::ordered_json e;
    e["source"] = d.source;
    e["domain"] = d.domain;
    e["joules"] = d.joules;
    e["measured"] = d.measured;
    measured = measured && d.measured;
    energy.push_back(std::move(e));
  }
  j["energy"] = std::move(energy);
  j["host_energy_joules"] = job.host_joules;
  j["measured"] = measured;
  j["operational_co2e_grams"] = job.operational_grams;
  j["embodied_co2e_grams"] = job.embodied_grams;
  if (!job.units.empty()) j["units"] = job.units;
  return job_json(j);
}

Result<EndedWorkload> parse_job_record(std::string_view text) {
  auto malformed = [](std::string detail) { return Error{ErrorKind::malformed, "", detail}; };
  if (text.empty()) return malformed("empty line");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return malformed("not JSON (a line cut short by a crash looks like this): " +
                     quote_for_error(text));
  }
  if (!j.is_object()) return malformed("expected a JSON object, found " + quote_for_error(text));
  auto wrong = [&](const nlohmann::json& in, std::string_view name, std::string_view expected) {
    auto it = in.find(name);
    return malformed("field \"" + std::string(name) + "\": expected " + std::string(expected) +
                     (it != in.end() ? ", found " + quote_for_error(it->dump()) : ", found none"));
  };
  auto number = [&](const nlohmann::json& in, const char* name, double* into) -> bool {
    auto it = in.find(name);
    if (it == in.end() || !it->is_number() || !std::isfinite(it->get<double>()) ||
        it->get<double>() < 0) {
      return false;
    }
    *into = it->get<double>();
    return true;
  };

  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) return wrong(j, "v", "the schema version");
  if (v->get<int64_t>() > kJobRecordSchemaVersion) {
    return malformed("schema version " + v->dump() + " is newer than this wattprobe reads (" +
                     std::to_string(kJobRecordSchemaVersion) + ")");
  }
  if (v->get<int64_t>() < 1) return wrong(j, "v", "the schema version, 1 or more");

  EndedWorkload out;
  struct Text {
    const char* name;
    std::string* into;
    bool required;
  };
  for (Text t : {Text{"workload", &out.id.workload, true}, Text{"kind", &out.id.kind, true},
                 Text{"namespace", &out.id.namespace_, false}, Text{"pod", &out.id.pod, false},
                 Text{"container", &out.id.container, false}}) {
    auto it = j.find(t.name);
    if (it == j.end() && !t.required) continue;
    if (it == j.end() || !it->is_string() || (t.required && it->get<std::string>().empty())) {
      return wrong(j, t.name, t.required ? "a non-empty string" : "a string");
    }
    *t.into = it->get<std::string>();
  }
  struct Instant {
    const char* name;
    int64_t* into;
  };
  for (Instant t : {Instant{"first_seen", &out.first_seen_ms},
                    Instant{"last_seen", &out.last_seen_ms}, Instant{"ended", &out.ended_ms}}) {
    auto it = j.find(t.name);
    std::optional<int64_t> ms;
    if (it != j.end() && it->is_string()) ms = parse_utc_instant(it->get<std::string>());
    if (!ms) return wrong(j, t.name, "a UTC time such as \"2026-11-23T10:00:00Z\"");
    *t.into = *ms;
  }
  if (out.first_seen_ms > out.last_seen_ms || out.last_seen_ms > out.ended_ms) {
    return malformed("first_seen, last_seen and ended are not in order");
  }
  // duration_seconds keeps the milliseconds the times cut: last_seen is first_seen plus it.
  double duration = 0;
  if (!number(j, "duration_seconds", &duration)) {
    return wrong(j, "duration_seconds", "a number, 0 or more");
  }
  // It must agree with the two times (written to the second, so within one).
  const double span_ms = static_cast<double>(out.last_seen_ms - out.first_seen_ms);
  if (!(std::fabs(duration * 1000 - span_ms) < 1000)) {
    return malformed(
        "field \"duration_seconds\": " + quote_for_error(j["duration_seconds"].dump()) +
        " does not match first_seen and last_seen");
  }
  out.last_seen_ms = out.first_seen_ms + static_cast<int64_t>(std::llround(duration * 1000));
  out.ended_ms = std::max(out.ended_ms, out.last_seen_ms);
  struct Number {
    const char* name;
    double* into;
  };
  for (Number n :
       {Number{"cpu_seconds", &out.cpu_seconds}, Number{"host_energy_joules", &out.host_joules},
        Number{"operational_co2e_grams", &out.operational_grams},
        Number{"embodied_co2e_grams", &out.embodied_grams}}) {
    if (!number(j, n.name, n.into)) return wrong(j, n.name, "a number, 0 or more");
  }
  auto energy = j.find("energy");
  if (energy == j.end() || !energy->is_array()) {
    return wrong(j, "energy", "an array of {source, domain, joules, measured}");
  }
  for (std::size_t i = 0; i < energy->size(); ++i) {
    const nlohmann::json& e = (*energy)[i];
    const std::string at = "energy[" + std::to_string(i) + "]";
    EndedWorkload::Domain d;
    auto source = e.is_object() ? e.find("source") : e.end();
    auto domain = e.is_object() ? e.find("domain") : e.end();
    auto measured = e.is_object() ? e.find("measured") : e.end();
    if (!e.is_object() || source == e.end() || !source->is_string() || domain == e.end() ||
        !domain->is_string() || measured == e.end() || !measured->is_boolean() ||
        !number(e, "joules", &d.joules)) {
      return malformed("field \"" + at + "\": expected {source, domain, joules >= 0, measured}, " +
                       "found " + quote_for_error(e.dump()));
    }
    d.source = source->get<std::string>();
    d.domain = domain->get<std::string>();
    d.measured = measured->get<bool>();
    out.domains.push_back(std::move(d));
  }
  auto measured = j.find("measured");
  if (measured == j.end() || !measured->is_boolean()) return wrong(j, "measured", "true or false");
  if (auto units = j.find("units"); units != j.end()) {
    if (!units->is_object()) return wrong(j, "units", "an object of unit name: count");
    for (auto it = units->begin(); it != units->end(); ++it) {
      if (!it->is_number() || !std::isfinite(it->get<double>()) || it->get<double>() < 0) {
        return malformed("field \"units\": the count of " + quote_for_error(it.key()) +
                         " is not a number, 0 or more: " + quote_for_error(it->dump()));
      }
      out.units[it.key()] = it->get<double>();
    }
  }
  return out;
}

JobRecordsRead read_job_records(const std::filesystem::path& state_dir, int64_t since_ms,
                                int64_t until_ms) {
  JobRecordsRead out;
  for (const DayFile& file : list_day_files(state_dir / "jobs")) {
    // A record lies in the file of the day it was written, the day it ended.
    if (file.day < utc_day(since_ms) || file.day > utc_day(until_ms)) continue;
    std::ifstream in(file.path);
    std::string line;
    uint64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      auto job = parse_job_record(line);
      if (!job) {
        ++out.skipped;
        out.warnings.push_back(file.path.string() + ":" + std::to_string(number) + ": " +
                               job.error().detail);
        continue;
      }
      if (job->ended_ms < since_ms || job->ended_ms >= until_ms) continue;
      out.jobs.push_back(std::move(*job));
    }
  }
  return out;
}

JobRecordWriter::JobRecordWriter(JobRecordOptions options)
    : options_(std::move(options)), dir_(options_.state_dir / "jobs") {}

Result<bool> JobRecordWriter::start(const SinkContext& context) {
  context_ = context;
  if (auto ready = prepare_day_folder(dir_, "the job records folder"); !ready.ok()) return ready;
  for (const DayFile& file : list_day_files(dir_)) disk_bytes_ += file.bytes;
  return true;
}

void JobRecordWriter::on_snapshot(const SnapshotPtr& snapshot) {
  if (!snapshot->ended || snapshot->ended->empty()) return;
  std::string bytes;
  for (const EndedWorkload& job : *snapshot->ended) bytes += job_record_line(job);
  const auto records = static_cast<uint64_t>(snapshot->ended->size());
  if (!make_room(bytes.size())) {
    dropped_ += records;
    fail("not writing " + std::to_string(records) +
         " job records: they would pass --job-records-max-bytes " +
         std::to_string(options_.max_bytes) + " alone");
    return;
  }
  const std::filesystem::path path = day_file_path(dir_, snapshot->timestamp_ms);
  const AppendResult appended = append_to_day_file(dir_, path, bytes);
  disk_bytes_ += appended.written;
  written_ += static_cast<uint64_t>(std::count(
      bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(appended.written), '\n'));
  if (!appended.error.empty()) {
    if (appended.written < bytes.size()) {
      dropped_ +=
          records -
          static_cast<uint64_t>(std::count(
              bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(appended.written), '\n'));
    }
    fail(appended.error);
  }
}

bool JobRecordWriter::make_room(uint64_t more) {
  if (options_.max_bytes == 0) return true;
  if (disk_bytes_ + more <= options_.max_bytes) return true;
  if (more > options_.max_bytes) return false;
  std::vector<DayFile> files = list_day_files(dir_);
  uint64_t total = 0;
  for (const DayFile& f : files) total += f.bytes;
  const uint64_t target = static_cast<uint64_t>(static_cast<double>(options_.max_bytes) * kTrimTo);
  uint64_t dropped = 0;
  for (std::size_t i = 0; i < files.size() && total + more > options_.max_bytes; ++i) {
    const DayFile& f = files[i];
    std::ifstream in(f.path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
    in.close();
    // Whole files go while newer ones remain; the newest keeps its newest lines under target.
    const bool last = i + 1 == files.size();
    std::size_t cut = lines.size();
    uint64_t keep_bytes = 0;
    if (last) {
      cut = 0;
      uint64_t file_bytes = f.bytes;
      while (cut < lines.size() && total - (f.bytes - file_bytes) + more > target) {
        file_bytes -= std::min<uint64_t>(file_bytes, lines[cut].size() + 1);
        ++cut;
      }
      keep_bytes = file_bytes;
    }
    std::error_code ec;
    if (cut >= lines.size()) {
      std::filesystem::remove(f.path, ec);
    } else {
      std::string rest;
      for (std::size_t k = cut; k < lines.size(); ++k) rest += lines[k] + "\n";
      const std::filesystem::path tmp = f.path.string() + ".tmp";
      std::filesystem::remove(tmp, ec);
      const AppendResult w = append_to_day_file(dir_, tmp, rest);
      if (!w.error.empty()) {
        fail(w.error);
        std::filesystem::remove(tmp, ec);
        return false;
      }
      std::filesystem::rename(tmp, f.path, ec);
      keep_bytes = rest.size();
    }
    if (ec) {
      fail("cannot drop records from " + f.path.string() + ": " + ec.message());
      return false;
    }
    dropped += std::min<std::size_t>(cut, lines.size());
    total -= f.bytes - keep_bytes;
  }
  dropped_ += dropped;
  disk_bytes_ = total;
  if (dropped > 0 && !drop_logged_) {
    drop_logged_ = true;
    context_.log("job records: dropped the " + std::to_string(dropped) +
                 " oldest records: the records under " + dir_.string() +
                 " passed --job-records-max-bytes " + std::to_string(options_.max_bytes) +
                 " (counted in wattprobe_agent_job_records_dropped_total; logged once)");
  }
  return total + more <= options_.max_bytes;
}

void JobRecordWriter::fail(const std::string& what) {
  ++errors_;
  context_.log("job records: " + what);
}

void JobRecordWriter::append_families(std::vector<Family>& out) const {
  out.push_back({"wattprobe_agent_job_records_written_total",
                 "Job records (workloads that ended: their cgroup was removed) written under "
                 "<state-dir>/jobs.",
                 MetricType::counter,
                 {{{}, static_cast<double>(written_)}}});
  out.push_back({"wattprobe_agent_job_records_dropped_total",
                 "Job records dropped, oldest first, to keep <state-dir>/jobs under "
                 "--job-records-max-bytes, or not written for a failed write.",
                 MetricType::counter,
                 {{{}, static_cast<double>(dropped_)}}});
}

void JobUnits::on_tick(const std::vector<Family>& families, std::vector<EndedWorkload>* ended) {
  for (const Family& f : families) {
    if (f.name != "wattprobe_workload_functional_units_total") continue;
    for (const Series& s : f.series) {
      std::string workload, unit;
      for (const auto& [name, value] : s.labels) {
        if (name == "workload") workload = value;
        if (name == "unit") unit = value;
      }
      first_.try_emplace({workload, unit}, s.value);
      for (EndedWorkload& job : *ended) {
        if (job.id.workload != workload) continue;
        job.units[unit] = std::max(0.0, s.value - first_[{workload, unit}]);
        first_.erase({workload, unit});  // the name's next run counts from the next tick
      }
    }
  }
}

}  // namespace wattprobe
