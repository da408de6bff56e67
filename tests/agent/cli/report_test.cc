#include "agent/cli/report.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/base/utc_time.h"
#include "agent/options.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

int64_t at(const char* utc) { return *parse_utc_instant(utc); }

/// A ledger line as the agent writes it.
std::string line(const std::string& start, const std::string& type, double joules, double op = 0,
                 double em = 0, double cpu = 0, const std::string& workload = "",
                 const std::string& kind = "", const std::string& ns = "", bool measured = true,
                 double gpu = -1) {
  nlohmann::ordered_json j;
  j["v"] = 1;
  j["start"] = start;
  j["period_seconds"] = 60;
  j["covered_seconds"] = 60.0;
  j["measured"] = measured;
  j["type"] = type;
  if (type == "workload") {
    j["workload"] = workload;
    j["kind"] = kind;
    if (!ns.empty()) j["namespace"] = ns;
  }
  j["joules"] = joules;
  if (gpu >= 0) j["gpu_joules"] = gpu;  // lines from before GPUs were counted apart have none
  j["cpu_seconds"] = cpu;
  j["operational_co2e_grams"] = op;
  j["embodied_co2e_grams"] = em;
  return j.dump() + "\n";
}

class ReportTest : public ::testing::Test {
 protected:
  void write_day(const std::string& date, const std::string& text) {
    std::filesystem::create_directories(state_.root() / "ledger");
    std::ofstream(state_.root() / "ledger" / (date + ".jsonl"), std::ios::app) << text;
  }

  /// Runs the command as a user would, returning its exit code.
  int report(std::vector<std::string> args) {
    args.insert(args.begin(), "--state-dir=" + state_.root().string());
    std::ostringstream out, err;
    int code = run_report(args, out, err);
    out_ = out.str();
    err_ = err.str();
    return code;
  }

  nlohmann::json json_report(std::vector<std::string> args) {
    args.push_back("--format=json");
    int code = report(args);
    EXPECT_EQ(code, 0) << err_;
    return nlohmann::json::parse(out_);
  }

  TempTree state_;
  std::string out_, err_;
};

/// Sums one numeric field over lines of a type (and workload field) from the files themselves.
double sum_of(const std::vector<std::string>& texts, const std::string& field,
              const std::string& type, const std::string& key = "", const std::string& value = "") {
  double sum = 0;
  for (const auto& t : texts) {
    std::istringstream in(t);
    std::string l;
    while (std::getline(in, l)) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      if (j.is_discarded() || j["type"] != type) continue;
      if (!key.empty() && j.value(key, "") != value) continue;
      sum += j[field].get<double>();
    }
  }
  return sum;
}

TEST_F(ReportTest, TotalsEqualTheSumOfTheLines) {
  std::string day;
  for (int m = 0; m < 30; ++m) {
    char start[32];
    std::snprintf(start, sizeof start, "2026-11-23T10:%02d:00Z", m);
    day +=
        line(start, "workload", 100.0 + m * 1.37, 0.05 * m, 0.003, 2.5, "nginx.service", "service");
    day += line(start, "workload", 7.25 * m, 0.01 * m, 0.001, 0.5, "shop/api/app", "pod", "shop");
    day += line(start, "idle", 50.125, 0.02, 0.1);
    day += line(start, "unattributed", 0.5 * m, 0.0001 * m, 0);
  }
  write_day("2026-11-23", day);

  auto j = json_report({"--since=2026-11-23", "--until=2026-11-24"});
  const auto& totals = j["totals"];
  double joules = sum_of({day}, "joules", "workload") + sum_of({day}, "joules", "idle") +
                  sum_of({day}, "joules", "unattributed");
  double op = sum_of({day}, "operational_co2e_grams", "workload") +
              sum_of({day}, "operational_co2e_grams", "idle") +
              sum_of({day}, "operational_co2e_grams", "unattributed");
  double em = sum_of({day}, "embodied_co2e_grams", "workload") +
              sum_of({day}, "embodied_co2e_grams", "idle");
  EXPECT_NEAR(totals["energy_joules"].get<double>(), joules, 1e-9 * joules);
  EXPECT_NEAR(totals["energy_kwh"].get<double>(), joules / 3.6e6, 1e-9 * joules / 3.6e6);
  EXPECT_NEAR(totals["operational_co2e_grams"].get<double>(), op, 1e-9 * op);
  EXPECT_NEAR(totals["embodied_co2e_grams"].get<double>(), em, 1e-9 * em);
  EXPECT_NEAR(totals["cpu_seconds"].get<double>(), sum_of({day}, "cpu_seconds", "workload"), 1e-9);
  EXPECT_NEAR(totals["operational_grams_per_kwh"].get<double>(), op / (joules / 3.6e6), 1e-6);
  EXPECT_EQ(totals["measured_share"].get<double>(), 1.0);
  EXPECT_NEAR(j["node"]["idle"]["energy_joules"].get<double>(), sum_of({day}, "joules", "idle"),
              1e-9);
  EXPECT_NEAR(j["node"]["unattributed"]["energy_joules"].get<double>(),
              sum_of({day}, "joules", "unattributed"), 1e-9);
  EXPECT_EQ(j["period"]["lines"], 120);
  EXPECT_EQ(j["period"]["skipped_lines"], 0);
  EXPECT_EQ(j["period"]["covered_seconds"], 30 * 60.0);
  ASSERT_EQ(j["groups"].size(), 2u);
  EXPECT_EQ(j["groups"][0]["group"], "nginx.service") << "most energy first";
  EXPECT_NEAR(j["groups"][0]["energy_joules"].get<double>(),
              sum_of({day}, "joules", "workload", "workload", "nginx.service"), 1e-9);
}

TEST_F(ReportTest, GroupsByKindAndByNamespace) {
  std::string day =
      line("2026-11-23T10:00:00Z", "workload", 10, 1, 0, 1, "a.service", "service") +
      line("2026-11-23T10:00:00Z", "workload", 20, 2, 0, 1, "b.service", "service") +
      line("2026-11-23T10:00:00Z", "workload", 30, 3, 0, 1, "shop/api/app", "pod", "shop") +
      line("2026-11-23T10:00:00Z", "workload", 40, 4, 0, 1, "shop/web/app", "pod", "shop") +
      line("2026-11-23T10:00:00Z", "workload", 50, 5, 0, 1, "ci/run/job", "pod", "ci") +
      line("2026-11-23T10:00:00Z", "idle", 5);
  write_day("2026-11-23", day);
  auto group = [](const nlohmann::json& j, const std::string& name) {
    for (const auto& g : j["groups"]) {
      if (g["group"] == name) return g["energy_joules"].get<double>();
    }
    ADD_FAILURE() << "no group " << name << " in " << j.dump();
    return -1.0;
  };
  auto by_kind = json_report({"--since=2026-11-23", "--until=2026-11-24", "--by=kind"});
  EXPECT_EQ(by_kind["by"], "kind");
  ASSERT_EQ(by_kind["groups"].size(), 2u);
  EXPECT_DOUBLE_EQ(group(by_kind, "pod"), sum_of({day}, "joules", "workload", "kind", "pod"));
  EXPECT_DOUBLE_EQ(group(by_kind, "service"),
                   sum_of({day}, "joules", "workload", "kind", "service"));

  auto by_ns = json_report({"--since=2026-11-23", "--until=2026-11-24", "--by", "namespace"});
  ASSERT_EQ(by_ns["groups"].size(), 3u);
  EXPECT_DOUBLE_EQ(group(by_ns, "shop"), sum_of({day}, "joules", "workload", "namespace", "shop"));
  EXPECT_DOUBLE_EQ(group(by_ns, "ci"), sum_of({day}, "joules", "workload", "namespace", "ci"));
  EXPECT_DOUBLE_EQ(group(by_ns, ""), sum_of({day}, "joules", "workload", "kind", "service"))
      << "workloads outside any namespace group together";
  EXPECT_DOUBLE_EQ(by_ns["totals"]["energy_joules"].get<double>(),
                   by_kind["totals"]["energy_joules"].get<double>());
}

TEST_F(ReportTest, MalformedLinesAreNamedAndSkipped) {
  std::string good1 =
      line("2026-11-23T10:00:00Z", "workload", 10, 1, 0.5, 1, "a.service", "service");
  std::string good2 = line("2026-11-23T10:01:00Z", "idle", 3, 0.3, 0.1);
  std::string newer = line("2026-11-23T10:02:00Z", "idle", 1000);
  newer.replace(newer.find("\"v\":1"), 5, "\"v\":3");
  std::string negative = line("2026-11-23T10:02:00Z", "idle", 1000);
  negative.replace(negative.find("\"joules\":1000"), 13, "\"joules\":-5");
  std::string bad_start = line("2026-11-23T10:02:00Z", "idle", 1000);
  bad_start.replace(bad_start.find("10:02:00Z"), 9, "10:02:00+01:00");
  std::string no_kind =
      "{\"v\":1,\"start\":\"2026-11-23T10:02:00Z\",\"period_seconds\":60,"
      "\"covered_seconds\":60,\"measured\":true,\"type\":\"workload\","
      "\"workload\":\"x\",\"joules\":1000,\"cpu_seconds\":0,"
      "\"operational_co2e_grams\":0,\"embodied_co2e_grams\":0}\n";
  write_day("2026-11-23", good1 + "{\"v\":1,\"start\":\"2026-11-23T10:0\n" + newer + negative +
                              "\n" + bad_start + "[1,2]\n" + no_kind + good2);

  int code = report({"--since=2026-11-23", "--until=2026-11-24", "--format=json"});
  ASSERT_EQ(code, 0) << "malformed lines do not stop the report: " << err_;
  std::string file = (state_.root() / "ledger" / "2026-11-23.jsonl").string();
  for (const std::string& want :
       {file + ":2: not JSON", file + ":3: schema version 3 is newer",
        file + ":4: field \"joules\"", file + ":5: empty line", file + ":6: field \"start\"",
        file + ":7: expected a JSON object", file + ":8: field \"kind\""}) {
    EXPECT_NE(err_.find(want), std::string::npos) << "want " << want << " in:\n" << err_;
  }
  EXPECT_EQ(err_.find(":1:"), std::string::npos) << err_;
  EXPECT_EQ(err_.find(":9:"), std::string::npos) << err_;
  auto j = nlohmann::json::parse(out_);
  EXPECT_EQ(j["period"]["skipped_lines"], 7);
  EXPECT_EQ(j["period"]["lines"], 2);
  EXPECT_DOUBLE_EQ(
      j["totals"]["energy_joules"].get<double>(),
      sum_of({good1, good2}, "joules", "workload") + sum_of({good1, good2}, "joules", "idle"));
}

TEST_F(ReportTest, APeriodCountsTheMinutesThatStartInsideIt) {
  write_day("2026-11-23", line("2026-11-23T09:59:00Z", "idle", 1) +
                              line("2026-11-23T10:00:00Z", "idle", 10) +
                              line("2026-11-23T10:59:00Z", "idle", 100) +
                              line("2026-11-23T11:00:00Z", "idle", 1000) +
                              line("2026-11-23T23:59:00Z", "idle", 10000));
  write_day("2026-11-24", line("2026-11-24T00:00:00Z", "idle", 100000) +
                              line("2026-11-24T00:01:00Z", "idle", 1000000));
  auto energy = [&](std::vector<std::string> args) {
    return json_report(std::move(args))["totals"]["energy_joules"].get<double>();
  };
  EXPECT_EQ(energy({"--since=2026-11-23T10:00:00Z", "--until=2026-11-23T11:00:00Z"}), 110);
  EXPECT_EQ(energy({"--since=2026-11-23T09:59:30Z", "--until=2026-11-23T11:00:01Z"}), 1110)
      << "a minute starting before --since is left out, one starting before --until is in";
  EXPECT_EQ(energy({"--since=2026-11-23T23:00:00Z", "--until=2026-11-24T00:01:00Z"}), 110000)
      << "a period over midnight reads both day files";
  EXPECT_EQ(energy({"--since=2026-11-24", "--until=2026-11-25"}), 1100000);
}

TEST_F(ReportTest, MeasuredShareIsTheEnergyOfMeasuredMinutes) {
  write_day(
      "2026-11-23",
      line("2026-11-23T10:00:00Z", "workload", 30, 0, 0, 1, "a.service", "service", "", true) +
          line("2026-11-23T10:01:00Z", "workload", 10, 0, 0, 1, "a.service", "service", "", false));
  auto j = json_report({"--since=2026-11-23", "--until=2026-11-24"});
  EXPECT_DOUBLE_EQ(j["totals"]["measured_share"].get<double>(), 30.0 / 40.0);
  EXPECT_TRUE(j["node"]["idle"]["measured_share"].is_null()) << "no energy: no share";
  EXPECT_TRUE(j["node"]["idle"]["operational_grams_per_kwh"].is_null());
}

TEST_F(ReportTest, NoLineInThePeriodIsAnErrorNamingTheFolder) {
  write_day("2026-11-23", line("2026-11-23T10:00:00Z", "idle", 1));
  EXPECT_EQ(report({"--since=2026-11-22", "--until=2026-11-23"}), 1);
  EXPECT_NE(err_.find((state_.root() / "ledger").string()), std::string::npos) << err_;
  EXPECT_TRUE(out_.empty());
}

TEST_F(ReportTest, BadArgumentsNameTheFlagAndTheValue) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> want;
  };
  for (const Case& c : std::vector<Case>{
           {{"--since", "yesterday"}, {"--since", "\"yesterday\""}},
           {{"--until=2026-02-30"}, {"--until", "\"2026-02-30\""}},
           {{"--since=2026-11-23T10:00:00+01:00"}, {"--since", "+01:00"}},
           {{"--since=-24x"}, {"--since", "\"-24x\""}},
           {{"--by=pod"}, {"--by", "\"pod\""}},
           {{"--format", "xml"}, {"--format", "\"xml\""}},
           {{"--since=2026-11-24", "--until=2026-11-23"}, {"--since", "before --until"}},
           {{"--frobnicate"}, {"--frobnicate"}},
           {{"--since"}, {"--since", "needs a value"}},
           {{"--by=kind", "--by=workload"}, {"--by", "twice"}},
       }) {
    EXPECT_EQ(report(c.args), 2) << c.args[0];
    for (const auto& w : c.want) EXPECT_NE(err_.find(w), std::string::npos) << w << " in " << err_;
  }
}

TEST(ReportTime, AcceptsTheDocumentedFormsOnly) {
  const int64_t now = at("2026-11-23T10:00:00Z");
  EXPECT_EQ(parse_report_time("2026-11-23T10:00:00Z", 0), now);
  EXPECT_EQ(parse_report_time("2026-11-23", 0), at("2026-11-23T00:00:00Z"));
  EXPECT_EQ(parse_report_time("2024-02-29", 0), at("2024-02-29T00:00:00Z"));
  EXPECT_EQ(parse_report_time("-24h", now), at("2026-11-22T10:00:00Z"));
  EXPECT_EQ(parse_report_time("-90m", now), at("2026-11-23T08:30:00Z"));
  EXPECT_EQ(parse_report_time("-7d", now), at("2026-11-16T10:00:00Z"));
  EXPECT_EQ(parse_report_time("now", now), now);
  for (const char* bad : {"", "24h", "-24", "-1.5h", "2026-11-23T10:00:00", "2026-11-23T24:00:00Z",
                          "2026-11-23 10:00:00Z", "2025-02-29", "2026-1-23", "2026-11-23T10:00Z",
                          "+24h", "2026-11-23T10:00:00.5Z"}) {
    EXPECT_FALSE(parse_report_time(bad, now)) << bad;
  }
}

TEST(ReportOptionsDefaults, TheLastDayByWorkloadAsATable) {
  const int64_t now = at("2026-11-23T10:00:00Z");
  ReportOptions o = parse_report_options({}, now);
  EXPECT_EQ(o.since_ms, at("2026-11-22T10:00:00Z"));
  EXPECT_EQ(o.until_ms, now);
  EXPECT_EQ(o.by, ReportOptions::GroupBy::workload);
  EXPECT_EQ(o.format, ReportOptions::Format::table);
  EXPECT_EQ(o.state_dir, "/var/lib/wattprobe");
  ReportOptions until = parse_report_options({"--until", "2026-11-20"}, now);
  EXPECT_EQ(until.since_ms, at("2026-11-19T00:00:00Z")) << "a day before --until";
}

TEST_F(ReportTest, TheTableFitsEightyColumns) {
  write_day("2026-11-23",
            line("2026-11-23T10:00:00Z", "workload", 123456789.123, 98765.4321, 1234.5, 99999.9,
                 "kube-system/coredns-5d78c9869d-abcde/coredns", "pod", "kube-system") +
                line("2026-11-23T10:00:00Z", "workload", 0.000123, 0.0000001, 0, 0.001,
                     "cron.service", "service") +
                line("2026-11-23T10:00:00Z", "idle", 5e9, 1e6, 3e5));
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24"}), 0) << err_;
  std::istringstream in(out_);
  std::string l;
  int rows = 0;
  while (std::getline(in, l)) {
    EXPECT_LE(l.size(), 79u) << "\"" << l << "\"";
    ++rows;
  }
  EXPECT_NE(out_.find("kube-system/coredns-5d78c9869d-abcde/coredns\n"), std::string::npos)
      << "a long name is shown whole on a line of its own:\n"
      << out_;
  EXPECT_NE(out_.find("cron.service"), std::string::npos);
  EXPECT_NE(out_.find("(idle)"), std::string::npos);
  EXPECT_NE(out_.find("total"), std::string::npos);
  EXPECT_GT(rows, 8);
}

TEST_F(ReportTest, CsvHasAHeaderAndOneRowPerGroupAndNodePart) {
  write_day("2026-11-23",
            line("2026-11-23T10:00:00Z", "workload", 10, 1, 0, 1, "odd,\"name\"", "service") +
                line("2026-11-23T10:00:00Z", "idle", 5, 0.5, 0.1));
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24", "--format=csv"}), 0) << err_;
  std::istringstream in(out_);
  std::vector<std::string> rows;
  for (std::string l; std::getline(in, l);) rows.push_back(l);
  ASSERT_EQ(rows.size(), 5u) << out_;
  EXPECT_EQ(rows[0],
            "row,workload,energy_joules,energy_kwh,cpu_seconds,operational_co2e_grams,"
            "embodied_co2e_grams,operational_grams_per_kwh,measured_share,gpu_energy_joules,"
            "cfe_energy_joules,cfe_score");
  EXPECT_EQ(rows[1].rfind("group,\"odd,\"\"name\"\"\",10,", 0), 0u) << rows[1];
  EXPECT_EQ(rows[2].rfind("idle,,5,", 0), 0u) << rows[2];
  EXPECT_EQ(rows[3].rfind("unattributed,,0,", 0), 0u) << rows[3];
  EXPECT_EQ(rows[4].rfind("total,,15,", 0), 0u) << rows[4];
}

TEST_F(ReportTest, GpuJoulesShowInTheTableCsvAndJson) {
  // A GPU trainer (900 J, 800 of them on the GPU), a web server without GPU, GPU idle and
  // unattributed GPU energy, and an older line without gpu_joules, which counts as none.
  write_day(
      "2026-11-23",
      line("2026-11-23T10:00:00Z", "workload", 900, 1, 0, 5, "train", "pod", "ml", true, 800) +
          line("2026-11-23T10:01:00Z", "workload", 100, 1, 0, 5, "train", "pod", "ml", true, 60) +
          line("2026-11-23T10:00:00Z", "workload", 50, 1, 0, 9, "nginx.service", "service", "",
               true, 0) +
          line("2026-11-23T10:00:00Z", "workload", 7, 1, 0, 1, "old.service", "service") +
          line("2026-11-23T10:00:00Z", "idle", 300, 0, 0, 0, "", "", "", true, 250) +
          line("2026-11-23T10:00:00Z", "unattributed", 20, 0, 0, 0, "", "", "", true, 15));
  auto j = json_report({"--since=2026-11-23", "--until=2026-11-24"});
  ASSERT_EQ(j["groups"][0]["group"], "train");
  EXPECT_EQ(j["groups"][0]["gpu_energy_joules"].get<double>(), 860);
  EXPECT_EQ(j["groups"][0]["energy_joules"].get<double>(), 1000) << "GPU joules stay in the total";
  EXPECT_EQ(j["groups"][1]["gpu_energy_joules"].get<double>(), 0);
  EXPECT_EQ(j["groups"][2]["gpu_energy_joules"].get<double>(), 0) << "an older line counts none";
  EXPECT_EQ(j["node"]["idle"]["gpu_energy_joules"].get<double>(), 250);
  EXPECT_EQ(j["node"]["unattributed"]["gpu_energy_joules"].get<double>(), 15);
  EXPECT_EQ(j["totals"]["gpu_energy_joules"].get<double>(), 860 + 250 + 15);

  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24", "--format=csv"}), 0) << err_;
  EXPECT_NE(out_.find("group,train,1000,"), std::string::npos) << out_;
  // GPU joules, then the CFE columns (no CFE in these lines: 0 J, no score).
  EXPECT_NE(out_.find(",860,0,\n"), std::string::npos) << "the trainer's GPU joules:\n" << out_;
  EXPECT_NE(out_.find("total,,1377,"), std::string::npos) << out_;
  EXPECT_NE(out_.find(",1125,0,\n"), std::string::npos) << "the total's GPU joules:\n" << out_;

  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24"}), 0) << err_;
  EXPECT_NE(out_.find("GPU J"), std::string::npos) << out_;
  std::istringstream in(out_);
  bool trainer = false, total = false;
  for (std::string l; std::getline(in, l);) {
    EXPECT_LE(l.size(), 79u) << "\"" << l << "\"";
    std::istringstream words(l);
    std::string name;
    double energy = 0, gpu = 0;
    words >> name >> energy >> gpu;
    if (name == "train") trainer = energy == 1000 && gpu == 860;
    if (name == "total") total = energy == 1377 && gpu == 1125;
  }
  EXPECT_TRUE(trainer) << "the trainer's row shows 1000 J of which 860 J GPU:\n" << out_;
  EXPECT_TRUE(total) << out_;
}

TEST_F(ReportTest, ANegativeGpuJoulesIsMalformed) {
  std::string bad = line("2026-11-23T10:01:00Z", "idle", 5, 0, 0, 0, "", "", "", true, 1);
  const std::string field = "\"gpu_joules\":1";
  bad.replace(bad.find(field), field.size(), "\"gpu_joules\":-3");
  write_day("2026-11-23",
            line("2026-11-23T10:00:00Z", "idle", 5, 0, 0, 0, "", "", "", true, 1) + bad);
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24"}), 0) << err_;
  EXPECT_NE(err_.find("2026-11-23.jsonl:2: field \"gpu_joules\": expected a number, 0 or more"),
            std::string::npos)
      << err_;
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

std::string with_cfe(std::string line, double cfe, double matched) {
  auto j = nlohmann::ordered_json::parse(line);
  j["cfe_joules"] = cfe;
  j["cfe_matched_joules"] = matched;
  return j.dump() + "\n";
}

TEST_F(ReportTest, CfeScoreIsCarbonFreeOverMatchedEnergyPerGroup) {
  // Hour 10 at 80 % carbon-free, hour 11 at 20 %, hour 12 without a published share.
  write_day(
      "2026-11-23",
      with_cfe(line("2026-11-23T10:00:00Z", "workload", 100, 1, 0, 1, "a", "service"), 80, 100) +
          with_cfe(line("2026-11-23T11:00:00Z", "workload", 300, 1, 0, 1, "a", "service"), 60,
                   300) +
          line("2026-11-23T12:00:00Z", "workload", 500, 1, 0, 1, "a", "service") +
          with_cfe(line("2026-11-23T10:00:00Z", "idle", 50), 40, 50));
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24", "--format=json"}), 0) << err_;
  auto j = nlohmann::json::parse(out_);
  EXPECT_DOUBLE_EQ(j["groups"][0]["cfe_energy_joules"].get<double>(), 140);
  // Time-matched: (80 + 60) / (100 + 300), not the mean of the hours' shares (50 %).
  EXPECT_DOUBLE_EQ(j["groups"][0]["cfe_score"].get<double>(), 0.35);
  EXPECT_DOUBLE_EQ(j["node"]["idle"]["cfe_score"].get<double>(), 0.8);
  EXPECT_TRUE(j["node"]["unattributed"]["cfe_score"].is_null()) << "no share: no score, no zero";
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24"}), 0) << err_;
  EXPECT_NE(out_.find("24/7 CFE score"), std::string::npos) << out_;
}

TEST_F(ReportTest, PerUnitIsSciOfTheWorkloadsTheGlobMatchesOverTheUnitsCounted) {
  auto unit = [](const std::string& start, const std::string& name, const std::string& glob,
                 double units) {
    nlohmann::ordered_json j;
    j["v"] = 2;
    j["start"] = start;
    j["period_seconds"] = 60;
    j["covered_seconds"] = 60.0;
    j["measured"] = true;
    j["type"] = "unit";
    j["unit"] = name;
    j["workload"] = glob;
    j["units"] = units;
    return j.dump() + "\n";
  };
  write_day(
      "2026-11-23",
      line("2026-11-23T10:00:00Z", "workload", 3.6e6, 400, 50, 1, "vllm-0.service", "service") +
          line("2026-11-23T10:00:00Z", "workload", 1.8e6, 200, 25, 1, "vllm-1.service", "service") +
          line("2026-11-23T10:00:00Z", "workload", 9e6, 1000, 90, 1, "nginx.service", "service") +
          line("2026-11-23T10:00:00Z", "idle", 1e6, 100) +
          unit("2026-11-23T10:00:00Z", "tokens", "vllm-*", 4000) +
          unit("2026-11-23T10:01:00Z", "tokens", "vllm-*", 500) +
          unit("2026-11-23T10:00:00Z", "requests", "nginx.service", 9000));
  nlohmann::json j = json_report({"--since=2026-11-23", "--until=2026-11-24", "--per-unit"});
  ASSERT_EQ(j["units"].size(), 2u) << j.dump(2);
  const nlohmann::json& requests = j["units"][0];
  const nlohmann::json& tokens = j["units"][1];
  EXPECT_EQ(tokens["unit"], "tokens");
  EXPECT_EQ(tokens["matched_workloads"],
            nlohmann::json::array({"vllm-0.service", "vllm-1.service"}));
  EXPECT_DOUBLE_EQ(tokens["sci"]["R"].get<double>(), 4500);
  EXPECT_DOUBLE_EQ(tokens["sci"]["grams_per_unit"].get<double>(), (600.0 + 75) / 4500);
  EXPECT_DOUBLE_EQ(tokens["joules_per_unit"].get<double>(), 5.4e6 / 4500);
  EXPECT_DOUBLE_EQ(requests["sci"]["grams_per_unit"].get<double>(), 1090.0 / 9000);
  // Unit lines add nothing to the energy rows of the usual report.
  nlohmann::json plain = json_report({"--since=2026-11-23", "--until=2026-11-24"});
  EXPECT_DOUBLE_EQ(plain["totals"]["energy_joules"].get<double>(), 3.6e6 + 1.8e6 + 9e6 + 1e6);

  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24", "--per-unit"}), 0) << err_;
  EXPECT_NE(out_.find("tokens"), std::string::npos) << out_;
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24", "--per-unit", "--format=csv"}), 0);
  EXPECT_NE(out_.find("tokens,vllm-*,4500,"), std::string::npos) << out_;
  EXPECT_EQ(report({"--per-unit", "--functional-units=10"}), 2);
  EXPECT_NE(err_.find("--per-unit"), std::string::npos) << err_;
  EXPECT_EQ(report({"--since=2026-11-24", "--until=2026-11-25", "--per-unit"}), 1);
}

TEST_F(ReportTest, AMalformedUnitLineIsNamedAndSkipped) {
  write_day("2026-11-23",
            line("2026-11-23T10:00:00Z", "idle", 1) +
                "{\"v\":2,\"start\":\"2026-11-23T10:00:00Z\",\"period_seconds\":60,"
                "\"covered_seconds\":60,\"measured\":true,\"type\":\"unit\",\"unit\":\"t\","
                "\"workload\":\"w\",\"units\":-4}\n");
  ASSERT_EQ(report({"--since=2026-11-23", "--until=2026-11-24"}), 0) << err_;
  EXPECT_NE(err_.find(":2: field \"units\""), std::string::npos) << err_;
}

}  // namespace
}  // namespace wattprobe
