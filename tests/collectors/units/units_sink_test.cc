#include "collectors/units/units_sink.h"

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

Labels workload(const std::string& name, const std::string& kind = "service",
                const std::string& ns = "", const std::string& pod = "") {
  return {{"workload", name}, {"kind", kind}, {"namespace", ns}, {"pod", pod}, {"container", ""}};
}

/// A tick's snapshot: each workload's host joules and (operational) grams.
Snapshot snapshot(const std::vector<std::tuple<Labels, double, double>>& workloads) {
  Snapshot s;
  Family host{"wattprobe_workload_host_energy_joules_total", "", MetricType::counter};
  Family op{"wattprobe_workload_operational_co2e_grams_total", "", MetricType::counter};
  Family em{"wattprobe_workload_embodied_co2e_grams_total", "", MetricType::counter};
  for (const auto& [labels, joules, grams] : workloads) {
    host.series.push_back({labels, joules});
    op.series.push_back({labels, grams});
    em.series.push_back({labels, 0.0});
  }
  s.families = {host, op, em};
  return s;
}

const Family* find(const std::vector<Family>& families, const std::string& name) {
  for (const Family& f : families)
    if (f.name == name) return &f;
  return nullptr;
}

std::string label(const Labels& l, const std::string& name) {
  for (const auto& [k, v] : l)
    if (k == name) return v;
  return "<none>";
}

struct Fixture {
  testing::TempTree tree;
  std::string path = tree.path("tokens.prom").string();
  void counter(double v) const {
    std::ofstream(path) << "# TYPE tokens_total counter\ntokens_total " << v << "\n";
  }
  UnitsSink sink(const std::string& glob) const {
    UnitSpec spec;
    spec.name = "tokens";
    spec.url = path;
    spec.counter = "tokens_total";
    spec.workload = glob;
    return UnitsSink(UnitOptions{{spec}, std::chrono::seconds(10)});
  }
};

TEST(UnitsSink, GlobAddsTheMatchedWorkloadsHostEnergyAndKeepsTheirCommonLabels) {
  Fixture fx;
  UnitsSink sink = fx.sink("vllm-*");
  const Labels a = workload("vllm-0.service"), b = workload("vllm-1.service");
  const Labels other = workload("nginx.service");
  for (int t = 0; t <= 12; ++t) {
    fx.counter(1000 + 50.0 * t);
    sink.reader(0).read_once();
    sink.observe(
        snapshot({{a, 10.0 * t, 0.01 * t}, {b, 30.0 * t, 0.03 * t}, {other, 500.0 * t, 1}}),
        1000 * t);
  }
  std::vector<Family> out;
  sink.append_families(out);
  const Family* per_unit = find(out, "wattprobe_workload_energy_per_unit_joules");
  ASSERT_NE(per_unit, nullptr);
  ASSERT_EQ(per_unit->series.size(), 1u);
  EXPECT_DOUBLE_EQ(per_unit->series[0].value, 40.0 / 50);  // (10 + 30) J per 50 units
  EXPECT_EQ(label(per_unit->series[0].labels, "workload"), "vllm-*");
  EXPECT_EQ(label(per_unit->series[0].labels, "kind"), "service");
  EXPECT_EQ(label(per_unit->series[0].labels, "unit"), "tokens");
  const Family* grams = find(out, "wattprobe_workload_co2e_per_unit_grams");
  ASSERT_NE(grams, nullptr);
  EXPECT_DOUBLE_EQ(grams->series[0].value, 0.04 / 50);
  const Family* units = find(out, "wattprobe_workload_functional_units_total");
  ASSERT_NE(units, nullptr);
  EXPECT_DOUBLE_EQ(units->series[0].value, 600);
  const Family* stable = find(out, "wattprobe_workload_energy_per_unit_stable");
  ASSERT_NE(stable, nullptr);
  EXPECT_EQ(stable->series[0].value, 0);  // 12 s of units, 20 needed
  const Family* why = find(out, "wattprobe_workload_energy_per_unit_stability_info");
  ASSERT_NE(why, nullptr);
  EXPECT_EQ(label(why->series[0].labels, "reason"), "warming_up");
}

TEST(UnitsSink, OneWorkloadKeepsItsOwnIdentity) {
  Fixture fx;
  UnitsSink sink = fx.sink("api.service");
  const Labels a = workload("api.service", "pod", "shop", "api-7");
  for (int t = 0; t <= 2; ++t) {
    fx.counter(10.0 * t);
    sink.reader(0).read_once();
    sink.observe(snapshot({{a, 5.0 * t, 0}}), 1000 * t);
  }
  std::vector<Family> out;
  sink.append_families(out);
  const Family* units = find(out, "wattprobe_workload_functional_units_total");
  ASSERT_NE(units, nullptr);
  EXPECT_EQ(units->series[0].labels, Labels({{"workload", "api.service"},
                                             {"kind", "pod"},
                                             {"namespace", "shop"},
                                             {"pod", "api-7"},
                                             {"container", ""},
                                             {"unit", "tokens"}}));
}

TEST(UnitsSink, NoUnitsInTheWindowGivesNoPerUnitSeries) {
  Fixture fx;
  UnitsSink sink = fx.sink("api.service");
  const Labels a = workload("api.service");
  for (int t = 0; t <= 30; ++t) {
    fx.counter(t < 5 ? 10.0 * t : 40);  // the service stops counting after 4 s
    sink.reader(0).read_once();
    sink.observe(snapshot({{a, 5.0 * t, 0}}), 1000 * t);
  }
  std::vector<Family> out;
  sink.append_families(out);
  EXPECT_EQ(find(out, "wattprobe_workload_energy_per_unit_joules"), nullptr);
  EXPECT_EQ(find(out, "wattprobe_workload_co2e_per_unit_grams"), nullptr);
  ASSERT_NE(find(out, "wattprobe_workload_functional_units_total"), nullptr);
  EXPECT_EQ(find(out, "wattprobe_workload_functional_units_total")->series[0].value, 40);
  EXPECT_EQ(find(out, "wattprobe_workload_energy_per_unit_stable")->series[0].value, 0);
}

TEST(UnitsSink, AWorkloadThatEndsOrAppearsMovesNothingBackOrInAStep) {
  Fixture fx;
  UnitsSink sink = fx.sink("job-*");
  const Labels a = workload("job-a.scope"), b = workload("job-b.scope");
  fx.counter(0);
  sink.reader(0).read_once();
  sink.observe(snapshot({{a, 100, 0}}), 0);
  fx.counter(10);
  sink.reader(0).read_once();
  // a ended; b appears with a total restored from the checkpoint: neither counts.
  sink.observe(snapshot({{b, 5000, 0}}), 1000);
  fx.counter(20);
  sink.reader(0).read_once();
  sink.observe(snapshot({{b, 5020, 0}}), 2000);
  std::vector<Family> out;
  sink.append_families(out);
  const Family* per_unit = find(out, "wattprobe_workload_energy_per_unit_joules");
  ASSERT_NE(per_unit, nullptr);
  EXPECT_DOUBLE_EQ(per_unit->series[0].value, 20.0 / 20);
}

TEST(UnitsSink, ScrapeErrorsAreExportedPerReasonFromZero) {
  Fixture fx;
  UnitsSink sink = fx.sink("api.service");
  std::ofstream(fx.path) << "not the text format\n";
  sink.reader(0).read_once();
  sink.observe(snapshot({}), 0);
  std::vector<Family> out;
  sink.append_families(out);
  const Family* errors = find(out, "wattprobe_agent_unit_scrape_errors_total");
  ASSERT_NE(errors, nullptr);
  EXPECT_EQ(errors->series.size(), std::size(kUnitErrorReasons));
  for (const Series& s : errors->series) {
    EXPECT_EQ(label(s.labels, "unit"), "tokens");
    EXPECT_EQ(s.value, label(s.labels, "reason") == "malformed" ? 1 : 0)
        << label(s.labels, "reason");
  }
  // Never read well: no units, no figure.
  EXPECT_EQ(find(out, "wattprobe_workload_functional_units_total"), nullptr);
}

TEST(UnitsSink, SaysWhichPartOfTheEnergyIsTheSplitOfASharedGpu) {
  Fixture fx;
  UnitsSink sink = fx.sink("llm.service");
  const Labels a = workload("llm.service");
  for (int t = 0; t <= 3; ++t) {
    fx.counter(100.0 * t);
    sink.reader(0).read_once();
    Snapshot s = snapshot({{a, 10.0 * t, 0}});
    Family gpu{"wattprobe_workload_gpu_energy_joules_total", "", MetricType::counter};
    for (const auto& [split, joules] : {std::pair{"sampled", 4.0}, {"exclusive", 2.0}}) {
      Labels l = a;
      l.emplace_back("source", "nvml");
      l.emplace_back("device", "0");
      l.emplace_back("split", split);
      gpu.series.push_back({l, joules * t});
    }
    s.families.push_back(gpu);
    sink.observe(s, 1000 * t);
  }
  std::vector<Family> out;
  sink.append_families(out);
  const Family* shared = find(out, "wattprobe_workload_energy_per_unit_shared_gpu_ratio");
  ASSERT_NE(shared, nullptr);
  EXPECT_DOUBLE_EQ(shared->series[0].value, 0.4);
  EXPECT_EQ(shared->series[0].labels, Labels({{"workload", "llm.service"}, {"unit", "tokens"}}));
}

// The service answers within milliseconds of the request that follows a snapshot: its count
// belongs with that snapshot's energy, not with the next tick's.
TEST(UnitsSink, AReadIsPairedWithTheSnapshotItFollowed) {
  Fixture fx;
  fx.counter(0);
  UnitsSink sink = fx.sink("api.service");
  ASSERT_TRUE(sink.start(SinkContext{}).ok());
  auto answered = [&](uint64_t reads) {
    for (int i = 0; i < 1000 && sink.reader(0).latest().reads < reads; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(sink.reader(0).latest().reads, reads);
  };
  answered(1);  // the baseline start() asks for
  const Labels a = workload("api.service");
  for (int t = 0; t <= 4; ++t) {
    fx.counter(100.0 * t);
    // Energy rising faster each tick: 0, 10, 30, 60, 100 J.
    sink.on_snapshot(std::make_shared<Snapshot>(snapshot({{a, 5.0 * t * (t + 1), 0}})));
    answered(t + 2);
  }
  sink.on_snapshot(std::make_shared<Snapshot>(snapshot({{a, 150, 0}})));
  sink.begin_stop();
  std::vector<Family> out;
  sink.append_families(out);
  const Family* per_unit = find(out, "wattprobe_workload_energy_per_unit_joules");
  ASSERT_NE(per_unit, nullptr);
  // 100 J by the snapshot the 400th unit's read followed; 150 J would be the next tick's.
  EXPECT_DOUBLE_EQ(per_unit->series[0].value, 100.0 / 400);
}

}  // namespace
}  // namespace wattprobe
