// Carbon's per-workload grams leave /metrics and the checkpoint with the workload (issue 16):
// after --workload-expiry without a tick, and past --max-workloads the longest idle first.
#include <gtest/gtest.h>

#include <set>

#include "agent/carbon/carbon.h"
#include "agent/carbon/grid/registry.h"
#include "agent/state/checkpoint.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

WorkloadId scope(int i) {
  return WorkloadId{"docker-" + std::to_string(i) + ".scope", "container", "", "", ""};
}

EnergyTick tick_of(int64_t end_ms, const std::vector<WorkloadId>& ran) {
  EnergyTick t;
  t.end_ms = end_ms;
  t.seconds = 1;
  for (const auto& id : ran) t.workloads.push_back({id, 10, 0.01, 10000000});
  t.idle_joules = 5;
  return t;
}

std::size_t series_count(const Carbon& c, std::string_view family) {
  std::vector<Family> fams;
  c.append_families(fams);
  for (const auto& f : fams)
    if (f.name == family) return f.series.size();
  return 0;
}

struct Rig {
  TempTree tree;
  std::unique_ptr<Carbon> carbon;
  explicit Rig(std::size_t max_workloads = 5000) {
    tree.write("proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\n");
    tree.write("proc/meminfo", "MemTotal:        8000000 kB\n");
    CarbonOptions o;
    o.workload_expiry = std::chrono::seconds(5);
    o.max_workloads = max_workloads;
    carbon = make_carbon(tree.paths(), o);
  }
};

TEST(CarbonExpiry, SixtyShortLivedScopesLeaveMetricsAndTheCheckpoint) {
  Rig rig;
  const WorkloadId stays{"agent.service", "service", "", "", ""};
  int64_t t = 1'700'000'000'000;
  rig.carbon->on_tick(tick_of(t, {stays}));
  const std::size_t bytes_before =
      encode_checkpoint(capture_totals(EnergyMeter({}), Attribution({}), rig.carbon.get())).size();
  for (int i = 0; i < 60; ++i) {
    t += 1000;
    rig.carbon->on_tick(tick_of(t, {stays, scope(i)}));
  }
  EXPECT_EQ(series_count(*rig.carbon, "wattprobe_workload_operational_co2e_grams_total"), 7u)
      << "the long-lived service and the scopes of the last 5 s + 1 tick";
  for (int i = 0; i < 7; ++i) {
    t += 1000;
    rig.carbon->on_tick(tick_of(t, {stays}));
  }
  EXPECT_EQ(series_count(*rig.carbon, "wattprobe_workload_operational_co2e_grams_total"), 1u);
  EXPECT_EQ(series_count(*rig.carbon, "wattprobe_workload_embodied_co2e_grams_total"), 1u);
  EXPECT_TRUE(rig.carbon->totals().workloads.contains(stays));
  EXPECT_EQ(rig.carbon->totals().last_seen_ms.size(), 1u);
  const std::size_t bytes_after =
      encode_checkpoint(capture_totals(EnergyMeter({}), Attribution({}), rig.carbon.get())).size();
  EXPECT_EQ(bytes_after, bytes_before);
}

TEST(CarbonExpiry, MaxWorkloadsDropsTheLongestIdleFirst) {
  Rig rig(3);
  int64_t t = 1'700'000'000'000;
  for (int i = 0; i < 5; ++i) rig.carbon->on_tick(tick_of(t += 100, {scope(i)}));
  const auto& w = rig.carbon->totals().workloads;
  EXPECT_EQ(w.size(), 3u);
  EXPECT_FALSE(w.contains(scope(0)));
  EXPECT_FALSE(w.contains(scope(1)));
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(w.contains(scope(i))) << i;
}

std::set<std::string> workloads_in(const std::vector<Family>& fams, std::string_view family) {
  std::set<std::string> out;
  for (const auto& f : fams) {
    if (f.name != family) continue;
    for (const auto& s : f.series)
      for (const auto& [k, v] : s.labels)
        if (k == "workload") out.insert(v);
  }
  return out;
}

// Issue 25: with a cap of 20, the energy, power and CPU series held 48 workloads while carbon's
// held 20. The accounting caps each tick (the biggest users), so over ticks attribution saw more
// distinct workloads than the cap; every per-workload family now keeps the same 20.
TEST(CarbonExpiry, MaxWorkloadsCapsEveryPerWorkloadFamilyAlike) {
  Rig rig(20);
  AttributionOptions ao;
  ao.max_workloads = 20;
  Attribution attribution(ao);
  int64_t t = 1'700'000'000'000;
  for (int round = 0; round < 4; ++round) {
    t += 1000;
    NodeEnergy energy;
    energy.seconds = 1;
    energy.domains.push_back(DomainEnergy{
        .source = "rapl_powercap", .domain = "package", .socket = 0, .joules = 10, .watts = 10});
    CpuTick cpu;
    cpu.capacity_ns = 1'000'000'000;
    // 16 workloads a tick, 12 of them new: the rounds see 52 in all, within the 5 s expiry.
    for (int i = round * 12; i < round * 12 + 16; ++i)
      cpu.workloads.push_back({scope(i), 1'000'000, 0, 0});
    EnergyTick tick = attribution.apply(energy, cpu, t);
    rig.carbon->on_tick(tick);
  }
  std::vector<Family> fams;
  attribution.append_families(fams);
  rig.carbon->append_families(fams);
  const auto carbon = workloads_in(fams, "wattprobe_workload_operational_co2e_grams_total");
  EXPECT_EQ(carbon.size(), 20u);
  for (const char* family :
       {"wattprobe_workload_energy_joules_total", "wattprobe_workload_power_watts",
        "wattprobe_workload_cpu_seconds_total", "wattprobe_workload_embodied_co2e_grams_total"}) {
    EXPECT_EQ(workloads_in(fams, family), carbon) << family;
  }
  EXPECT_EQ(attribution.workload_count(), 20u);
  EXPECT_TRUE(carbon.contains("docker-51.scope")) << "the last tick's workloads stay";
  EXPECT_FALSE(carbon.contains("docker-0.scope")) << "the longest idle leave first";
}

TEST(CarbonExpiry, ACheckpointKeepsWhenEachWorkloadLastRan) {
  Rig rig;
  int64_t t = 1'700'000'000'000;
  rig.carbon->on_tick(tick_of(t, {scope(1)}));
  rig.carbon->on_tick(tick_of(t + 4000, {scope(2)}));
  CheckpointState s = capture_totals(EnergyMeter({}), Attribution({}), rig.carbon.get());
  s.host.hostname = "h";
  s.written_ms = t + 4000;
  auto decoded = decode_checkpoint(encode_checkpoint(s));
  ASSERT_TRUE(std::holds_alternative<CheckpointState>(decoded));
  const auto& back = std::get<CheckpointState>(decoded).carbon;
  EXPECT_EQ(back.last_seen_ms.at(scope(1)), t);
  EXPECT_EQ(back.last_seen_ms.at(scope(2)), t + 4000);

  // Restored after a restart: scope 1 is past the 5 s expiry 2 s later, scope 2 is not.
  Rig restarted;
  restarted.carbon->restore(back);
  restarted.carbon->on_tick(tick_of(t + 6000, {}));
  EXPECT_FALSE(restarted.carbon->totals().workloads.contains(scope(1)));
  EXPECT_TRUE(restarted.carbon->totals().workloads.contains(scope(2)));
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

double run_grams(Carbon& c, const WorkloadId& id) {
  std::vector<EndedWorkload> ended(1);
  ended[0].id = id;
  c.add_run_grams(ended);
  return ended[0].operational_grams + ended[0].embodied_grams;
}

// Job records (issue 29): an ended run's grams are its own, also when the name runs again and
// when the agent restarted between the two runs.
TEST(CarbonRuns, ARunsGramsAreItsOwnAcrossARerunAndARestart) {
  Rig rig;
  const WorkloadId job{"run-u9.service", "service", "", "", ""};
  int64_t t = 1'700'000'000'000;
  for (int i = 0; i < 3; ++i) rig.carbon->on_tick(tick_of(t += 1000, {job}));
  const double first = run_grams(*rig.carbon, job);
  EXPECT_GT(first, 0);
  rig.carbon->on_tick(tick_of(t += 1000, {job}));
  EXPECT_NEAR(run_grams(*rig.carbon, job), first / 3, first * 1e-9);  // one tick of three

  // Restarted after the second run ended: a third run counts from there.
  CarbonTotals saved = rig.carbon->totals();
  Rig again;
  again.carbon->restore(saved);
  again.carbon->restore_ended_run(job);
  again.carbon->on_tick(tick_of(t += 1000, {job}));
  again.carbon->on_tick(tick_of(t += 1000, {job}));
  EXPECT_NEAR(run_grams(*again.carbon, job), first * 2 / 3, first * 1e-9);
}

}  // namespace
}  // namespace wattprobe
