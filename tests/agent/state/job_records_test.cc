// Job records (issue 29): one line per ended workload under <state-dir>/jobs, read back by the
// reader beside the writer, bounded by --job-records-max-bytes with the oldest dropped and counted.
#include "agent/state/job_records.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <tuple>

#include "agent/base/utc_time.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::TempTree;

EndedWorkload job(const std::string& name, int64_t ended_ms) {
  EndedWorkload j;
  j.id = {name, "pod", "batch", "train-x7", "main"};
  // Times are written to the second; the duration keeps last_seen's milliseconds.
  j.first_seen_ms = ended_ms - 65'000;
  j.last_seen_ms = ended_ms - 750;
  j.ended_ms = ended_ms;
  j.cpu_seconds = 61.5;
  j.domains = {{"rapl_powercap", "package", 3000.25, true},
               {"rapl_powercap", "dram", 120, true},
               {"nvml", "gpu", 900.5, false}};
  j.host_joules = 4020.75;
  j.operational_grams = 0.53;
  j.embodied_grams = 0.125;
  return j;
}

SnapshotPtr snapshot(int64_t ms, std::vector<EndedWorkload> ended) {
  auto s = std::make_shared<Snapshot>();
  s->timestamp_ms = ms;
  if (!ended.empty()) s->ended = std::make_shared<const std::vector<EndedWorkload>>(ended);
  return s;
}

double family(const JobRecordWriter& w, const std::string& name) {
  std::vector<Family> fams;
  w.append_families(fams);
  for (const auto& f : fams)
    if (f.name == name) return f.series.at(0).value;
  return -1;
}

TEST(JobRecords, ALineReadsBackAsItWasWritten) {
  EndedWorkload j = job("batch/train-x7/main", *parse_utc_instant("2026-11-23T10:00:00Z"));
  j.units = {{"tokens", 120000}};
  const std::string line = job_record_line(j);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_THAT(line, HasSubstr(R"("v":1)"));
  EXPECT_THAT(line, HasSubstr(R"("measured":false)"));  // the GPU's figure was an estimate
  auto back = parse_job_record(line.substr(0, line.size() - 1));
  ASSERT_TRUE(back.ok()) << back.error().detail;
  EXPECT_EQ(back->id, j.id);
  EXPECT_EQ(back->first_seen_ms, j.first_seen_ms);
  EXPECT_EQ(back->last_seen_ms, j.last_seen_ms);
  EXPECT_EQ(back->ended_ms, j.ended_ms);
  EXPECT_DOUBLE_EQ(back->cpu_seconds, j.cpu_seconds);
  EXPECT_DOUBLE_EQ(back->host_joules, j.host_joules);
  EXPECT_DOUBLE_EQ(back->operational_grams, j.operational_grams);
  EXPECT_DOUBLE_EQ(back->embodied_grams, j.embodied_grams);
  ASSERT_EQ(back->domains.size(), 3u);
  EXPECT_EQ(back->domains[2].domain, "gpu");
  EXPECT_FALSE(back->domains[2].measured);
  EXPECT_DOUBLE_EQ(back->domains[0].joules, 3000.25);
  EXPECT_EQ(back->units, j.units);
  // No units: no field.
  EXPECT_THAT(job_record_line(job("a", j.ended_ms)), ::testing::Not(HasSubstr("units")));
}

TEST(JobRecords, TheReaderNamesTheFieldAndRefusesANewerSchema) {
  const int64_t t = *parse_utc_instant("2026-11-23T10:00:00Z");
  std::string line = job_record_line(job("a", t));
  line.pop_back();
  auto newer = parse_job_record(std::string(line).replace(line.find("\"v\":1"), 5, "\"v\":2"));
  ASSERT_FALSE(newer.ok());
  EXPECT_THAT(newer.error().detail, HasSubstr("newer"));
  auto negative = parse_job_record(
      std::string(line).replace(line.find("\"cpu_seconds\":61.5"), 18, "\"cpu_seconds\":-1"));
  ASSERT_FALSE(negative.ok());
  EXPECT_THAT(negative.error().detail, HasSubstr("\"cpu_seconds\""));
  EXPECT_THAT(negative.error().detail, HasSubstr("-1"));
  auto far = parse_job_record(std::string(line).replace(line.find("\"duration_seconds\":64.25"), 24,
                                                        "\"duration_seconds\":9e300"));
  ASSERT_FALSE(far.ok());
  EXPECT_THAT(far.error().detail, HasSubstr("does not match first_seen and last_seen"));
  auto torn = parse_job_record(line.substr(0, 40));
  ASSERT_FALSE(torn.ok());
  EXPECT_THAT(torn.error().detail, HasSubstr("not JSON"));
}

TEST(JobRecords, TheWriterAppendsToTheDayFileAndCountsWhatItWrote) {
  TempTree t;
  JobRecordOptions o;
  o.state_dir = t.path("state");
  JobRecordWriter w(o);
  ASSERT_TRUE(w.start(SinkContext{}).ok());
  const int64_t t0 = *parse_utc_instant("2026-11-23T23:59:59Z");
  w.on_snapshot(snapshot(t0, {}));  // nothing ended: nothing written
  EXPECT_FALSE(std::filesystem::exists(t.path("state/jobs/2026-11-23.jsonl")));
  w.on_snapshot(snapshot(t0, {job("a", t0), job("b", t0)}));
  w.on_snapshot(snapshot(t0 + 2000, {job("c", t0 + 2000)}));
  EXPECT_TRUE(std::filesystem::exists(t.path("state/jobs/2026-11-23.jsonl")));
  EXPECT_TRUE(std::filesystem::exists(t.path("state/jobs/2026-11-24.jsonl")));
  EXPECT_EQ(family(w, "wattprobe_agent_job_records_written_total"), 3);
  EXPECT_EQ(family(w, "wattprobe_agent_job_records_dropped_total"), 0);

  JobRecordsRead all = read_job_records(o.state_dir, t0 - 86'400'000, t0 + 86'400'000);
  EXPECT_EQ(all.skipped, 0u);
  ASSERT_EQ(all.jobs.size(), 3u);
  EXPECT_EQ(all.jobs[0].id.workload, "a");
  EXPECT_EQ(all.jobs[2].id.workload, "c");
  // [since, until) by the end.
  JobRecordsRead first_day = read_job_records(o.state_dir, t0 - 1000, t0 + 1);
  EXPECT_EQ(first_day.jobs.size(), 2u);
}

TEST(JobRecords, PastTheCapTheOldestRecordsGoAndAreCounted) {
  TempTree t;
  const int64_t t0 = *parse_utc_instant("2026-11-24T12:00:00Z");
  const std::string one = job_record_line(job("old", t0 - 86'400'000));
  std::string old_day;
  for (int i = 0; i < 10; ++i) old_day += one;
  t.write("state/jobs/2026-11-23.jsonl", old_day);
  std::vector<std::string> logged;
  JobRecordOptions o;
  o.state_dir = t.path("state");
  o.max_bytes = 12 * one.size();
  JobRecordWriter w(o);
  ASSERT_TRUE(w.start(SinkContext{[&](const std::string& l) { logged.push_back(l); }}).ok());
  // Two fit beside the old day's ten; the third passes the cap: the old day goes.
  for (int i = 0; i < 3; ++i) w.on_snapshot(snapshot(t0 + i * 1000, {job("new", t0 + i * 1000)}));
  EXPECT_FALSE(std::filesystem::exists(t.path("state/jobs/2026-11-23.jsonl")));
  EXPECT_EQ(family(w, "wattprobe_agent_job_records_dropped_total"), 10);
  EXPECT_EQ(family(w, "wattprobe_agent_job_records_written_total"), 3);
  // Today's file alone passes the cap: its oldest lines go, the newest stay.
  for (int i = 3; i < 20; ++i) w.on_snapshot(snapshot(t0 + i * 1000, {job("new", t0 + i * 1000)}));
  JobRecordsRead left = read_job_records(o.state_dir, t0 - 86'400'000 * 2, t0 + 86'400'000);
  EXPECT_EQ(left.skipped, 0u);
  ASSERT_FALSE(left.jobs.empty());
  EXPECT_LE(left.jobs.size(), 12u);
  EXPECT_EQ(left.jobs.back().ended_ms, t0 + 19'000);
  EXPECT_EQ(family(w, "wattprobe_agent_job_records_dropped_total"), 10 + 20 - left.jobs.size());
  uint64_t bytes = std::filesystem::file_size(t.path("state/jobs/2026-11-24.jsonl"));
  EXPECT_LE(bytes, o.max_bytes);
  // Logged once, naming the option.
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_THAT(logged[0], HasSubstr("--job-records-max-bytes"));
}

std::vector<Family> units_family(std::vector<std::tuple<std::string, std::string, double>> rows) {
  Family f{"wattprobe_workload_functional_units_total", "", MetricType::counter};
  for (const auto& [workload, unit, value] : rows)
    f.series.push_back({Labels{{"workload", workload}, {"unit", unit}}, value});
  return {f};
}

TEST(JobUnits, AJobGetsTheUnitsItsOwnSectionCountedWhileItRanNotAGlobs) {
  JobUnits units;
  std::vector<EndedWorkload> none;
  units.on_tick(units_family({{"etl.service", "rows", 100}, {"etl*", "rows_all", 500}}), &none);
  units.on_tick(units_family({{"etl.service", "rows", 160}, {"etl*", "rows_all", 900}}), &none);
  std::vector<EndedWorkload> ended{job("etl.service", 1)};
  units.on_tick(units_family({{"etl.service", "rows", 250}, {"etl*", "rows_all", 950}}), &ended);
  EXPECT_EQ(ended[0].units, (std::map<std::string, double>{{"rows", 150}}));
  // The name runs again: its record counts from the tick after the first run ended.
  units.on_tick(units_family({{"etl.service", "rows", 260}}), &none);
  ended = {job("etl.service", 2)};
  units.on_tick(units_family({{"etl.service", "rows", 300}}), &ended);
  EXPECT_EQ(ended[0].units, (std::map<std::string, double>{{"rows", 40}}));
  ended = {job("other.service", 3)};
  units.on_tick(units_family({{"etl.service", "rows", 310}}), &ended);
  EXPECT_TRUE(ended[0].units.empty());
}

}  // namespace
}  // namespace wattprobe
