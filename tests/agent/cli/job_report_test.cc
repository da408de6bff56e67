// `wattprobe report --jobs` (issue 29): the job records of a period, filtered by kind, as a
// table, CSV or JSON; bad values refused naming the flag and the value.
#include "agent/cli/job_report.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/base/usage_error.h"
#include "agent/base/utc_time.h"
#include "agent/cli/report.h"
#include "agent/state/job_records.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::TempTree;

EndedWorkload job(const std::string& name, const std::string& kind, int64_t ended_ms,
                  double joules) {
  EndedWorkload j;
  j.id = {name, kind, "", "", ""};
  j.first_seen_ms = ended_ms - 10'000;
  j.last_seen_ms = ended_ms - 1'000;
  j.ended_ms = ended_ms;
  j.cpu_seconds = 5;
  j.domains = {{"rapl_powercap", "package", joules, true}};
  j.host_joules = joules;
  j.operational_grams = 0.25;
  return j;
}

struct Reported {
  int code;
  std::string out, err;
};

Reported report(std::vector<std::string> args) {
  std::ostringstream out, err;
  int code = run_report(args, out, err);
  return {code, out.str(), err.str()};
}

class JobReport : public ::testing::Test {
 protected:
  void SetUp() override {
    const int64_t now = wall_clock_ms() / 1000 * 1000;
    append(now - 7'200'000,
           job_record_line(job("run-u1.service", "service", now - 7'200'000, 100)));
    append(now - 60'000, job_record_line(job("abc123def456", "container", now - 60'000, 250.5)));
    append(now - 60'000, "{\"v\":1, torn\n");
    dir = tree.path("state").string();
  }
  void append(int64_t ms, const std::string& text) {
    std::filesystem::create_directories(tree.path("state/jobs"));
    std::ofstream(tree.path("state/jobs/" + format_utc_date(ms) + ".jsonl"), std::ios::app) << text;
  }
  TempTree tree;
  std::string dir;
};

TEST_F(JobReport, ListsTheJobsThatEndedInThePeriodByKindAndFormat) {
  Reported all = report({"--jobs", "--state-dir", dir, "--format", "json"});
  ASSERT_EQ(all.code, 0) << all.err;
  EXPECT_THAT(all.err, HasSubstr("torn"));  // the malformed line is named, and skipped
  nlohmann::json j = nlohmann::json::parse(all.out);
  ASSERT_EQ(j["jobs"].size(), 2u);
  EXPECT_EQ(j["jobs"][1]["workload"], "abc123def456");
  EXPECT_DOUBLE_EQ(j["jobs"][1]["host_energy_joules"].get<double>(), 250.5);
  EXPECT_DOUBLE_EQ(j["totals"]["host_energy_joules"].get<double>(), 350.5);

  Reported last_hour = report({"--state-dir", dir, "--jobs", "--since", "-1h", "--format", "csv"});
  ASSERT_EQ(last_hour.code, 0) << last_hour.err;
  EXPECT_THAT(last_hour.out, HasSubstr("workload,kind,namespace"));
  EXPECT_THAT(last_hour.out, HasSubstr("abc123def456,container,"));
  EXPECT_THAT(last_hour.out, Not(HasSubstr("run-u1.service")));

  Reported services = report({"--jobs", "--state-dir", dir, "--kind", "service"});
  ASSERT_EQ(services.code, 0) << services.err;
  EXPECT_THAT(services.out, HasSubstr("run-u1.service"));
  EXPECT_THAT(services.out, Not(HasSubstr("abc123def456")));
  EXPECT_THAT(services.out, HasSubstr("1 jobs"));

  Reported none = report({"--jobs", "--state-dir", dir, "--kind", "vm"});
  EXPECT_EQ(none.code, 1);
  EXPECT_THAT(none.err, HasSubstr("no job ended"));
}

TEST_F(JobReport, BadValuesAreRefusedNamingTheFlagAndTheValue) {
  Reported kind = report({"--jobs", "--state-dir", dir, "--kind", "batch"});
  EXPECT_EQ(kind.code, 2);
  EXPECT_THAT(kind.err, HasSubstr("\"batch\" for --kind"));
  Reported format = report({"--jobs", "--format", "xml"});
  EXPECT_EQ(format.code, 2);
  EXPECT_THAT(format.err, HasSubstr("\"xml\" for --format"));
  Reported since = report({"--jobs", "--since", "yesterday"});
  EXPECT_EQ(since.code, 2);
  EXPECT_THAT(since.err, HasSubstr("\"yesterday\" for --since"));
  Reported by = report({"--jobs", "--by", "kind"});  // the ledger's flag, not the jobs'
  EXPECT_EQ(by.code, 2);
  EXPECT_THAT(by.err, HasSubstr("--by"));
}

}  // namespace
}  // namespace wattprobe
