#include "agent/state/ledger.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "agent/base/utc_time.h"
#include "tests/support/settable_grid_provider.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::SettableProvider;
using testing::TempTree;

int64_t at(const char* utc) { return *parse_utc_instant(utc); }

WorkloadId service(std::string name) { return WorkloadId{std::move(name), "service", "", "", ""}; }
WorkloadId pod(std::string ns, std::string p, std::string c) {
  return WorkloadId{ns + "/" + p + "/" + c, "pod", ns, p, c};
}

struct Line {
  std::string file;
  nlohmann::json json;
};

/// Carbon and a ledger fed the way the agent feeds them: Carbon sees each tick first.
class LedgerRig {
 public:
  explicit LedgerRig(unsigned retention_days = 400,
                     std::chrono::seconds period = std::chrono::seconds(60)) {
    host_.write("sys/class/dmi/id/sys_vendor", "QEMU\n");
    host_.write("proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\n");
    host_.write("proc/meminfo", "MemTotal:        8000000 kB\n");
    CarbonOptions c;
    c.embodied_kg = 1000;
    c.install_date = "2025-01-01";
    carbon_ =
        std::make_unique<Carbon>(host_.paths(), c, std::make_unique<SettableProvider>(&intensity));
    options.state_dir = state_.root();
    options.retention_days = retention_days;
    options.period = period;
    ledger = std::make_unique<Ledger>(options);
  }

  void feed(const EnergyTick& t) {
    carbon_->grid().refresh_now(t.end_ms);
    ledger->on_tick(t, carbon_->on_tick(t));
    for (const auto& w : t.workloads) {
      fed_joules[w.id.workload] += w.joules;
      fed_cpu[w.id.workload] += static_cast<double>(w.cpu_ns) / 1e9;
    }
    fed_idle += t.idle_joules;
    fed_unattributed += t.unattributed_joules;
    fed_seconds += t.seconds;
  }

  std::filesystem::path dir() const { return state_.root() / "ledger"; }
  std::filesystem::path day_file(const char* date) const {
    return dir() / (std::string(date) + ".jsonl");
  }

  std::vector<Line> lines() const {
    std::vector<Line> out;
    std::map<std::string, std::filesystem::path> files;  // sorted by day
    for (const auto& e : std::filesystem::directory_iterator(dir())) {
      files[e.path().filename().string()] = e.path();
    }
    for (const auto& [name, path] : files) {
      std::ifstream in(path);
      std::string text;
      while (std::getline(in, text)) out.push_back({name, nlohmann::json::parse(text)});
    }
    return out;
  }

  const Carbon& carbon() const { return *carbon_; }

  double intensity = 400;
  LedgerOptions options;
  std::unique_ptr<Ledger> ledger;
  std::map<std::string, double> fed_joules, fed_cpu;
  double fed_idle = 0, fed_unattributed = 0, fed_seconds = 0;

 private:
  TempTree host_;
  TempTree state_;
  std::unique_ptr<Carbon> carbon_;
};

EnergyTick tick(int64_t end_ms, double seconds, std::vector<EnergyTick::Workload> workloads,
                double idle, double unattributed = 0, bool measured = true) {
  EnergyTick t;
  t.end_ms = end_ms;
  t.seconds = seconds;
  t.measured = measured;
  t.workloads = std::move(workloads);
  t.idle_joules = idle;
  t.unattributed_joules = unattributed;
  t.measured_joules = idle + unattributed;
  for (const auto& w : t.workloads) t.measured_joules += w.joules;
  return t;
}

const nlohmann::json* find(const std::vector<Line>& lines, const std::string& start,
                           const std::string& type, const std::string& workload = "") {
  for (const auto& l : lines) {
    if (l.json["start"] == start && l.json["type"] == type &&
        (workload.empty() || l.json.value("workload", "") == workload)) {
      return &l.json;
    }
  }
  return nullptr;
}

TEST(Ledger, SplitsATickThatStraddlesAMinuteInProportionToItsTime) {
  LedgerRig rig;
  const WorkloadId web = service("nginx.service");
  // 10:00:59.250 → 10:01:00.250: three quarters in the first minute, one quarter in the next.
  rig.feed(tick(at("2026-11-23T10:01:00Z") + 250, 1.0, {{web, 8.0, 0.5, 400'000'000}}, 4.0, 2.0));
  ASSERT_TRUE(find(rig.lines(), "2026-11-23T10:00:00Z", "idle")) << "the tick ended past 10:01";
  ASSERT_FALSE(find(rig.lines(), "2026-11-23T10:01:00Z", "idle")) << "10:01 is still open";
  rig.feed(tick(at("2026-11-23T10:02:00Z") + 250, 60.0, {{web, 60.0, 0.5, 1'000'000'000}}, 30.0));

  auto lines = rig.lines();
  const auto* first = find(lines, "2026-11-23T10:00:00Z", "workload", "nginx.service");
  const auto* second = find(lines, "2026-11-23T10:01:00Z", "workload", "nginx.service");
  ASSERT_TRUE(first && second);
  EXPECT_DOUBLE_EQ((*first)["joules"].get<double>(), 8.0 * 0.75);
  EXPECT_DOUBLE_EQ((*first)["cpu_seconds"].get<double>(), 0.4 * 0.75);
  EXPECT_DOUBLE_EQ((*first)["covered_seconds"].get<double>(), 0.75);
  // The second minute: the last quarter of the first tick and 59.75 of the second's 60 s.
  EXPECT_NEAR((*second)["joules"].get<double>(), 8.0 * 0.25 + 60.0 * 59.75 / 60, 1e-9);
  EXPECT_NEAR((*second)["covered_seconds"].get<double>(), 0.25 + 59.75, 1e-9);
  const auto* idle = find(lines, "2026-11-23T10:00:00Z", "idle");
  const auto* unattributed = find(lines, "2026-11-23T10:00:00Z", "unattributed");
  ASSERT_TRUE(idle && unattributed);
  EXPECT_DOUBLE_EQ((*idle)["joules"].get<double>(), 3.0);
  EXPECT_DOUBLE_EQ((*unattributed)["joules"].get<double>(), 1.5);
  EXPECT_EQ((*first)["v"], kLedgerWorkloadLineVersion);
  EXPECT_EQ((*first)["period_seconds"], 60);
  EXPECT_EQ((*first)["kind"], "service");
  EXPECT_FALSE(first->contains("namespace")) << "only pods carry namespace, pod and container";
}

TEST(Ledger, GpuJoulesAreAFieldOfTheirOwnAndPartOfTheTotal) {
  LedgerRig rig;
  const WorkloadId trainer = pod("ml", "train-0", "main");
  const WorkloadId web = service("nginx.service");
  // trainer: 30 J of which 25 J on its GPU; nginx used no GPU. Of idle 40 J, 35 J is the GPU's;
  // of unattributed 6 J, 5 J is GPU energy no process could be given. The tick straddles 10:01.
  EnergyTick t =
      tick(at("2026-11-23T10:01:00Z") + 500, 2.0,
           {{trainer, 30.0, 0.1, 100'000'000, 25.0}, {web, 8.0, 0.2, 200'000'000}}, 40.0, 6.0);
  t.idle_gpu_joules = 35.0;
  t.unattributed_gpu_joules = 5.0;
  rig.feed(t);
  rig.ledger->flush_all();

  auto lines = rig.lines();
  double gpu = 0, all = 0;
  for (const auto& l : lines) {
    ASSERT_TRUE(l.json.contains("gpu_joules")) << l.json.dump();
    EXPECT_LE(l.json["gpu_joules"].get<double>(), l.json["joules"].get<double>() + 1e-12)
        << "GPU joules are part of the line's joules: " << l.json.dump();
    gpu += l.json["gpu_joules"].get<double>();
    all += l.json["joules"].get<double>();
  }
  EXPECT_NEAR(gpu, 25.0 + 35.0 + 5.0, 1e-9) << "GPU energy is neither lost nor counted twice";
  EXPECT_NEAR(all, 30.0 + 8.0 + 40.0 + 6.0, 1e-9);
  // Split like the rest of the tick: three quarters before 10:01.
  const auto* first = find(lines, "2026-11-23T10:00:00Z", "workload", trainer.workload);
  const auto* nginx = find(lines, "2026-11-23T10:00:00Z", "workload", web.workload);
  const auto* idle = find(lines, "2026-11-23T10:00:00Z", "idle");
  const auto* unattributed = find(lines, "2026-11-23T10:01:00Z", "unattributed");
  ASSERT_TRUE(first && nginx && idle && unattributed);
  EXPECT_DOUBLE_EQ((*first)["gpu_joules"].get<double>(), 25.0 * 0.75);
  EXPECT_DOUBLE_EQ((*first)["joules"].get<double>(), 30.0 * 0.75);
  EXPECT_EQ((*nginx)["gpu_joules"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ((*idle)["gpu_joules"].get<double>(), 35.0 * 0.75);
  EXPECT_DOUBLE_EQ((*unattributed)["gpu_joules"].get<double>(), 5.0 * 0.25);
}

TEST(Ledger, SumsOfTheLinesEqualSumsOfTheTicksAcrossMinutesAndDays) {
  LedgerRig rig;
  const std::vector<WorkloadId> ids{service("nginx.service"), service("postgres.service"),
                                    pod("shop", "api-7d9f", "app"), pod("batch", "etl-1", "run")};
  std::mt19937 rng(42);
  std::uniform_real_distribution<double> seconds(0.3, 2.7), joules(0, 50);
  // From 23:57 UTC over midnight: minutes, a day file change, ticks of uneven length.
  int64_t end = at("2026-11-23T23:57:00Z");
  std::set<std::string> estimated_minutes;
  for (int i = 0; i < 300; ++i) {
    // Whole milliseconds, as the agent's wall clock gives, and ticks that meet end to end.
    int64_t ms = static_cast<int64_t>(seconds(rng) * 1000);
    double s = static_cast<double>(ms) / 1000;
    end += ms;
    std::vector<EnergyTick::Workload> ws;
    for (std::size_t k = 0; k < ids.size(); ++k) {
      if ((i + k) % 3 == 0) continue;  // workloads come and go
      ws.push_back({ids[k], joules(rng), 0.1, static_cast<uint64_t>(joules(rng) * 1e7)});
    }
    bool measured = i < 100 || i > 120;
    auto t = tick(end, s, ws, joules(rng), joules(rng) / 10, measured);
    if (!measured) {
      int64_t start = t.end_ms - ms;
      for (int64_t m = start / 60000; m <= (t.end_ms - 1) / 60000; ++m) {
        estimated_minutes.insert(format_utc_instant(m * 60000));
      }
    }
    rig.intensity = 200 + i;  // the grid changes every tick
    rig.feed(t);
  }
  rig.ledger->flush_all();

  auto lines = rig.lines();
  std::map<std::string, double> joules_of, cpu_of, op_of, em_of;
  double idle = 0, unattributed = 0, covered = 0, idle_op = 0, idle_em = 0, unattr_op = 0;
  std::set<std::string> files;
  for (const auto& l : lines) {
    const auto& j = l.json;
    files.insert(l.file);
    EXPECT_EQ(l.file, j["start"].get<std::string>().substr(0, 10) + ".jsonl")
        << "a line goes to the file of its UTC day";
    EXPECT_LE(j["covered_seconds"].get<double>(), 60 + 1e-9);
    if (estimated_minutes.count(j["start"])) {
      EXPECT_FALSE(j["measured"].get<bool>()) << j["start"];
    } else {
      EXPECT_TRUE(j["measured"].get<bool>()) << j["start"];
    }
    if (j["type"] == "workload") {
      std::string w = j["workload"];
      joules_of[w] += j["joules"].get<double>();
      cpu_of[w] += j["cpu_seconds"].get<double>();
      op_of[w] += j["operational_co2e_grams"].get<double>();
      em_of[w] += j["embodied_co2e_grams"].get<double>();
      if (j["kind"] == "pod") {
        EXPECT_EQ(j["workload"], j["namespace"].get<std::string>() + "/" +
                                     j["pod"].get<std::string>() + "/" +
                                     j["container"].get<std::string>());
      }
    } else if (j["type"] == "idle") {
      idle += j["joules"].get<double>();
      idle_op += j["operational_co2e_grams"].get<double>();
      idle_em += j["embodied_co2e_grams"].get<double>();
      covered += j["covered_seconds"].get<double>();
    } else {
      ASSERT_EQ(j["type"], "unattributed");
      unattributed += j["joules"].get<double>();
      unattr_op += j["operational_co2e_grams"].get<double>();
    }
  }
  EXPECT_EQ(files, (std::set<std::string>{"2026-11-23.jsonl", "2026-11-24.jsonl"}));
  EXPECT_EQ(rig.ledger->lines_written(), lines.size());
  EXPECT_EQ(rig.ledger->errors(), 0u);
  const double rel = 1e-9;
  for (const auto& id : ids) {
    const auto& g = rig.carbon().totals().workloads.at(id);
    EXPECT_NEAR(joules_of[id.workload], rig.fed_joules[id.workload],
                rel * rig.fed_joules[id.workload]);
    EXPECT_NEAR(cpu_of[id.workload], rig.fed_cpu[id.workload], rel * rig.fed_cpu[id.workload]);
    EXPECT_NEAR(op_of[id.workload], g.operational, rel * g.operational);
    EXPECT_NEAR(em_of[id.workload], g.embodied, rel * g.embodied);
    EXPECT_GT(g.embodied, 0);
  }
  EXPECT_NEAR(idle, rig.fed_idle, rel * rig.fed_idle);
  EXPECT_NEAR(unattributed, rig.fed_unattributed, rel * rig.fed_unattributed);
  EXPECT_NEAR(idle_op, rig.carbon().totals().idle.operational, rel * idle_op);
  EXPECT_NEAR(idle_em, rig.carbon().totals().idle.embodied, rel * idle_em);
  EXPECT_NEAR(unattr_op, rig.carbon().totals().unattributed_operational, rel * unattr_op);
  EXPECT_NEAR(covered, rig.fed_seconds, rel * rig.fed_seconds);
}

TEST(Ledger, StopWritesThePartialMinuteWithTheSecondsItCovers) {
  LedgerRig rig;
  const WorkloadId web = service("nginx.service");
  for (int i = 1; i <= 20; ++i) {
    rig.feed(tick(at("2026-11-23T10:00:00Z") + i * 1000, 1.0, {{web, 2.0, 0.5, 500'000'000}}, 1.0));
  }
  EXPECT_FALSE(std::filesystem::exists(rig.day_file("2026-11-23")));
  rig.ledger->flush_all();
  auto lines = rig.lines();
  ASSERT_EQ(lines.size(), 3u);  // nginx, idle, unattributed
  const auto* w = find(lines, "2026-11-23T10:00:00Z", "workload", "nginx.service");
  ASSERT_TRUE(w);
  EXPECT_DOUBLE_EQ((*w)["covered_seconds"].get<double>(), 20.0);
  EXPECT_DOUBLE_EQ((*w)["joules"].get<double>(), 40.0);
  EXPECT_DOUBLE_EQ((*w)["cpu_seconds"].get<double>(), 10.0);
  rig.ledger->flush_all();
  EXPECT_EQ(rig.lines().size(), 3u) << "a second flush writes nothing twice";
}

TEST(Ledger, ARestartedAgentAppendsToTheSameDayFile) {
  LedgerRig rig;
  const WorkloadId web = service("nginx.service");
  rig.feed(tick(at("2026-11-23T10:00:30Z"), 1.0, {{web, 2.0, 0.5, 1}}, 1.0));
  rig.ledger.reset();  // stop: writes the partial minute
  auto before = rig.lines();
  ASSERT_EQ(before.size(), 3u);

  rig.ledger = std::make_unique<Ledger>(rig.options);
  ASSERT_TRUE(rig.ledger->open(at("2026-11-23T10:00:40Z")).ok());
  rig.feed(tick(at("2026-11-23T10:00:50Z"), 1.0, {{web, 3.0, 0.5, 1}}, 1.0));
  rig.feed(tick(at("2026-11-23T10:01:10Z"), 1.0, {{web, 5.0, 0.5, 1}}, 1.0));
  auto after = rig.lines();
  ASSERT_EQ(after.size(), 6u);
  for (std::size_t i = 0; i < before.size(); ++i) EXPECT_EQ(after[i].json, before[i].json);
  // Both runs wrote a line for 10:00; a reader sums them.
  EXPECT_EQ(after[3].json["start"], "2026-11-23T10:00:00Z");
  EXPECT_DOUBLE_EQ(after[0].json["joules"].get<double>() + after[3].json["joules"].get<double>(),
                   5.0);
}

TEST(Ledger, ALineTornByACrashStaysItsOwnLine) {
  LedgerRig rig;
  std::filesystem::create_directories(rig.dir());
  {
    std::ofstream torn(rig.day_file("2026-11-23"));
    torn << "{\"v\":1,\"start\":\"2026-11-23T09:59:00Z\",\"peri";
  }
  ASSERT_TRUE(rig.ledger->open(at("2026-11-23T10:00:00Z")).ok());
  rig.feed(tick(at("2026-11-23T10:00:30Z"), 1.0, {{service("a.service"), 2.0, 0.5, 1}}, 1.0));
  rig.ledger->flush_all();
  std::ifstream in(rig.day_file("2026-11-23"));
  std::string first, text;
  std::getline(in, first);
  EXPECT_EQ(first, "{\"v\":1,\"start\":\"2026-11-23T09:59:00Z\",\"peri");
  int whole = 0;
  while (std::getline(in, text)) {
    EXPECT_TRUE(nlohmann::json::accept(text)) << text;
    ++whole;
  }
  EXPECT_EQ(whole, 3);
  EXPECT_EQ(rig.ledger->lines_written(), 3u);
}

void touch(const std::filesystem::path& p) { std::ofstream(p) << "{}\n"; }

TEST(Ledger, RetentionDeletesDayFilesPastTheirDaysAtStartAndAtDayChange) {
  LedgerRig rig(/*retention_days=*/3);
  std::filesystem::create_directories(rig.dir());
  for (int d = 10; d <= 23; ++d) touch(rig.day_file(("2026-11-" + std::to_string(d)).c_str()));
  touch(rig.dir() / "notes.txt");
  touch(rig.dir() / "2026-13-01.jsonl");  // not a day: not ours to delete

  ASSERT_TRUE(rig.ledger->open(at("2026-11-23T12:00:00Z")).ok());
  // Kept: the 20th (its day ended 3 days before the 23rd began) through today.
  for (int d = 10; d <= 23; ++d) {
    auto f = rig.day_file(("2026-11-" + std::to_string(d)).c_str());
    EXPECT_EQ(std::filesystem::exists(f), d >= 20) << f;
  }
  EXPECT_TRUE(std::filesystem::exists(rig.dir() / "notes.txt"));
  EXPECT_TRUE(std::filesystem::exists(rig.dir() / "2026-13-01.jsonl"));

  // The first period of the 24th deletes the 20th.
  rig.feed(tick(at("2026-11-23T23:59:30Z"), 1.0, {}, 1.0));
  rig.feed(tick(at("2026-11-24T00:00:30Z"), 1.0, {}, 1.0));
  EXPECT_TRUE(std::filesystem::exists(rig.day_file("2026-11-20")));
  rig.feed(tick(at("2026-11-24T00:01:30Z"), 1.0, {}, 1.0));
  EXPECT_FALSE(std::filesystem::exists(rig.day_file("2026-11-20")));
  EXPECT_TRUE(std::filesystem::exists(rig.day_file("2026-11-21")));
  EXPECT_TRUE(std::filesystem::exists(rig.day_file("2026-11-24")));
  EXPECT_EQ(rig.ledger->errors(), 0u);
}

TEST(Ledger, RetentionZeroKeepsEveryDay) {
  LedgerRig rig(/*retention_days=*/0);
  std::filesystem::create_directories(rig.dir());
  touch(rig.day_file("2020-01-01"));
  ASSERT_TRUE(rig.ledger->open(at("2026-11-23T12:00:00Z")).ok());
  EXPECT_TRUE(std::filesystem::exists(rig.day_file("2020-01-01")));
}

TEST(Ledger, ShortPeriodsAlignToTheirLength) {
  LedgerRig rig(400, std::chrono::seconds(10));
  const WorkloadId web = service("nginx.service");
  for (int i = 1; i <= 25; ++i) {
    rig.feed(tick(at("2026-11-23T10:00:00Z") + i * 1000, 1.0, {{web, 1.0, 0.5, 1}}, 0.5));
  }
  auto lines = rig.lines();
  ASSERT_TRUE(find(lines, "2026-11-23T10:00:00Z", "idle"));
  ASSERT_TRUE(find(lines, "2026-11-23T10:00:10Z", "idle"));
  EXPECT_FALSE(find(lines, "2026-11-23T10:00:20Z", "idle")) << "still open";
  EXPECT_EQ((*find(lines, "2026-11-23T10:00:10Z", "idle"))["period_seconds"], 10);
  EXPECT_DOUBLE_EQ((*find(lines, "2026-11-23T10:00:10Z", "workload"))["joules"].get<double>(), 10);
}

TEST(Ledger, GramsOfAnotherTickAreCountedNotWritten) {
  LedgerRig rig;
  const EnergyTick first = tick(at("2026-11-23T10:00:30Z"), 1.0, {}, 1.0);
  rig.feed(first);
  // Grams of the first tick handed over with the second: the line would mix two ticks.
  CarbonTickGrams of_the_first;
  of_the_first.end_ms = first.end_ms;
  rig.ledger->on_tick(tick(at("2026-11-23T10:00:31Z"), 1.0, {}, 7.0), of_the_first);
  rig.ledger->flush_all();
  EXPECT_EQ(rig.ledger->errors(), 1u);
  EXPECT_DOUBLE_EQ((*find(rig.lines(), "2026-11-23T10:00:00Z", "idle"))["joules"].get<double>(),
                   1.0);
}

TEST(Ledger, OpenNamesAFolderItCannotUse) {
  TempTree t;
  t.write("state", "a file, not a folder\n");
  LedgerRig rig;
  LedgerOptions o = rig.options;
  o.state_dir = t.path("state");
  Ledger ledger(o);
  auto opened = ledger.open(at("2026-11-23T10:00:00Z"));
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message().find(t.path("state/ledger").string()), std::string::npos)
      << opened.error().message();
}

TEST(Ledger, MetricsCountTheLinesWritten) {
  LedgerRig rig;
  rig.feed(tick(at("2026-11-23T10:00:30Z"), 1.0, {{service("a.service"), 2.0, 0.5, 1}}, 1.0));
  rig.feed(tick(at("2026-11-23T10:01:30Z"), 1.0, {}, 1.0));
  std::vector<Family> fams;
  rig.ledger->append_families(fams);
  std::map<std::string, double> by_name;
  for (const auto& f : fams) by_name[f.name] = f.series.at(0).value;
  EXPECT_EQ(by_name["wattprobe_agent_ledger_lines_written_total"],
            static_cast<double>(rig.lines().size()));
  EXPECT_EQ(by_name["wattprobe_agent_ledger_errors_total"], 0);
}

TEST(Ledger, UnitLinesHoldEachUnitsRiseInThePeriodAsVersionTwo) {
  LedgerRig rig;
  const WorkloadId web = service("vllm.service");
  auto units = [](double tokens, double requests) {
    Family f{"wattprobe_workload_functional_units_total", "", MetricType::counter};
    f.series.push_back({Labels{{"workload", "vllm*"}, {"unit", "tokens"}}, tokens});
    f.series.push_back({Labels{{"workload", "vllm*"}, {"unit", "requests"}}, requests});
    return std::vector<Family>{f};
  };
  const int64_t t0 = at("2026-11-23T10:00:10Z");
  rig.feed(tick(t0, 1.0, {{web, 8.0, 0.5, 400'000'000}}, 4.0));
  rig.ledger->count_units(units(0, 0), t0);  // the first read: the family starts at 0
  rig.feed(tick(t0 + 1000, 1.0, {{web, 8.0, 0.5, 400'000'000}}, 4.0));
  rig.ledger->count_units(units(300, 3), t0 + 1000);
  rig.feed(tick(t0 + 60'000, 59.0, {{web, 8.0, 0.5, 400'000'000}}, 4.0));
  rig.ledger->count_units(units(500, 3), t0 + 60'000);
  rig.ledger->flush_all();
  auto lines = rig.lines();
  const auto* first = find(lines, "2026-11-23T10:00:00Z", "unit");
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["v"], kLedgerSchemaVersion);
  EXPECT_EQ((*first)["v"], 2);
  std::map<std::pair<std::string, std::string>, double> got;
  for (const auto& l : lines) {
    if (l.json["type"] == "unit") {
      EXPECT_EQ(l.json["workload"], "vllm*");
      got[{l.json["start"], l.json["unit"]}] += l.json["units"].get<double>();
    }
  }
  using Key = std::pair<std::string, std::string>;
  EXPECT_EQ(got, (std::map<Key, double>{{{"2026-11-23T10:00:00Z", "requests"}, 3},
                                        {{"2026-11-23T10:00:00Z", "tokens"}, 300},
                                        {{"2026-11-23T10:01:00Z", "tokens"}, 200}}));
  // Workload lines are as before.
  EXPECT_EQ((*find(lines, "2026-11-23T10:00:00Z", "workload"))["v"], kLedgerWorkloadLineVersion);
}

}  // namespace
}  // namespace wattprobe
