// Carbon's per-workload grams leave /metrics and the checkpoint with the workload (issue 16):
// after --workload-expiry without a tick, and past --max-workloads the longest idle first.
#include <gtest/gtest.h>

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
