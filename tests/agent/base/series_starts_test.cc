#include "agent/base/series_starts.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

constexpr const char* kEnergy = "wattprobe_workload_energy_joules_total";

Snapshot tick(int64_t ms, std::vector<Series> energy) {
  Snapshot s;
  s.timestamp_ms = ms;
  s.families.push_back(Family{kEnergy, "", MetricType::counter, std::move(energy)});
  s.families.push_back(Family{"wattprobe_node_power_watts", "", MetricType::gauge, {{{}, 3.0}}});
  return s;
}

Labels workload(const std::string& name) { return {{"workload", name}, {"pod", ""}}; }

TEST(SeriesStarts, ASeriesStartsAtTheEndOfTheTickBeforeItFirstAppears) {
  SeriesStarts starts;
  starts.observe(tick(10'000, {{workload("a"), 1}}), 9'000);  // 9'000: the agent's start
  starts.observe(tick(11'000, {{workload("a"), 2}, {workload("b"), 1}}), 10'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("a")), 9'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("b")), 10'000);
  // Gauges have no start.
  EXPECT_EQ(starts.start_ms("wattprobe_node_power_watts", {}), 0);
}

TEST(SeriesStarts, ACounterThatGoesDownIsAResetAndStartsAgain) {
  SeriesStarts starts;
  starts.observe(tick(10'000, {{workload("a"), 5}}), 9'000);
  starts.observe(tick(11'000, {{workload("a"), 1}}), 10'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("a")), 10'000);
}

TEST(SeriesStarts, ASeriesThatGoesAwayIsForgottenAndCountsAnewWhenBack) {
  SeriesStarts starts;
  starts.observe(tick(10'000, {{workload("a"), 5}}), 9'000);
  starts.observe(tick(11'000, {}), 10'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("a")), 0);
  starts.observe(tick(12'000, {{workload("a"), 7}}), 11'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("a")), 11'000);
}

TEST(SeriesStarts, ARestoredStartIsKeptAndItsFirstValueIsNoReset) {
  SeriesStarts starts;
  starts.restore({{kEnergy, {{"workload", "a"}}, 1'000}, {kEnergy, {{"workload", "gone"}}, 2'000}});
  // Label order and an empty label do not make another series.
  starts.observe(tick(10'000, {{{{"pod", ""}, {"workload", "a"}}, 0.5}}), 9'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("a")), 1'000);
  EXPECT_EQ(starts.start_ms(kEnergy, workload("gone")), 0);  // not in the first tick
  auto entries = starts.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], (SeriesStart{kEnergy, {{"workload", "a"}}, 1'000}));
}

}  // namespace
}  // namespace wattprobe
