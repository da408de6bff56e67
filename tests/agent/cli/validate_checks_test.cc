#include "agent/cli/validate_checks.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace wattprobe {
namespace {

/// One tick of a host with a package row (and psys when given): cumulative joules per family.
struct Host {
  double package = 0, psys = -1, idle = 0, work = 0, lost = 0;
};

SnapshotPtr snap(const Host& h) {
  auto s = std::make_shared<Snapshot>();
  Family node{"wattprobe_node_energy_joules_total", "", MetricType::counter};
  node.series.push_back(
      {{{"source", "rapl_powercap"}, {"domain", "package"}, {"socket", "0"}}, h.package});
  if (h.psys >= 0) {
    node.series.push_back(
        {{{"source", "rapl_powercap"}, {"domain", "psys"}, {"socket", ""}}, h.psys});
  }
  s->families.push_back(node);
  s->families.push_back({"wattprobe_node_idle_energy_joules_total",
                         "",
                         MetricType::counter,
                         {{{{"domain", "package"}}, h.idle}}});
  s->families.push_back({"wattprobe_node_unattributed_energy_joules_total",
                         "",
                         MetricType::counter,
                         {{{{"domain", "package"}}, h.lost}}});
  s->families.push_back({"wattprobe_workload_energy_joules_total",
                         "",
                         MetricType::counter,
                         {{{{"workload", "a.service"}, {"domain", "package"}}, h.work}}});
  s->families.push_back({"wattprobe_energy_source_info",
                         "",
                         MetricType::gauge,
                         {{{{"source", "rapl_powercap"}, {"measured", "true"}}, 1}}});
  return s;
}

/// Ticks 1 s apart: `idle_w` for the first `idle_n` ticks, then `load_w`; everything conserved.
std::vector<ValidateTick> run(double idle_w, int idle_n, double load_w, int load_n,
                              double psys_over = -1) {
  std::vector<ValidateTick> ticks;
  Host h;
  if (psys_over >= 0) h.psys = 0;
  for (int i = 0; i <= idle_n + load_n; ++i) {
    if (i > 0) {
      double w = i <= idle_n ? idle_w : load_w;
      h.package += w;
      h.idle += std::min(w, 20.0);
      h.work += w - std::min(w, 20.0);
      if (h.psys >= 0) h.psys += w * psys_over;
    }
    ticks.push_back({static_cast<double>(i), snap(h), {}});
  }
  return ticks;
}

// A copy: the checks are often a temporary that ends with the statement.
std::optional<ValidateCheck> find(const std::vector<ValidateCheck>& checks,
                                  const std::string& name) {
  for (const auto& c : checks)
    if (c.name == name) return c;
  return std::nullopt;
}

TEST(ValidateChecks, ConservationPassesWhenThePartsAddUp) {
  auto checks = conservation_checks(run(20, 5, 60, 5));
  const auto c = find(checks, "conservation_every_tick");
  ASSERT_TRUE(c && c->pass);
  EXPECT_TRUE(*c->pass);
  EXPECT_LT(*c->value, 1e-12);
}

TEST(ValidateChecks, ConservationNamesTheTickThatDoesNotAddUp) {
  auto ticks = run(20, 5, 60, 5);
  // Tick 7 loses 1 J of a workload's energy: its parts no longer sum to the measured 60 J.
  for (size_t i = 7; i < ticks.size(); ++i) {
    auto s = std::make_shared<Snapshot>(*ticks[i].snapshot);
    for (auto& f : s->families)
      if (f.name == "wattprobe_workload_energy_joules_total") f.series[0].value -= 1;
    ticks[i].snapshot = s;
  }
  const auto c = find(conservation_checks(ticks), "conservation_every_tick");
  ASSERT_TRUE(c && c->pass);
  EXPECT_FALSE(*c->pass);
  EXPECT_NEAR(*c->value, 1.0 / 60, 1e-9);
  EXPECT_NE(c->detail.find("tick 7, package"), std::string::npos) << c->detail;
}

TEST(ValidateChecks, CountersAdvanceAndIdleDrawsLess) {
  auto ticks = run(20, 5, 60, 5);
  auto checks = counter_checks(ticks, {0, 5}, {5, 10}, {});
  const auto adv = find(checks, "counter_advances_rapl_powercap_package_0");
  ASSERT_TRUE(adv && adv->pass);
  EXPECT_TRUE(*adv->pass);
  EXPECT_NEAR(*adv->value, 60, 1e-9);
  const auto flat = find(checks, "counter_idle_below_load_rapl_powercap_package_0");
  ASSERT_TRUE(flat && flat->pass);
  EXPECT_NEAR(*flat->value, 20.0 / 60, 1e-9);
  EXPECT_TRUE(*flat->pass);
}

TEST(ValidateChecks, AStalledCounterFailsToAdvance) {
  auto checks = counter_checks(run(0, 5, 0, 5), {0, 5}, {5, 10}, {});
  const auto adv = find(checks, "counter_advances_rapl_powercap_package_0");
  ASSERT_TRUE(adv && adv->pass);
  EXPECT_FALSE(*adv->pass);
}

TEST(ValidateChecks, ATotalSteppingBackFails) {
  auto ticks = run(20, 5, 60, 5);
  auto s = std::make_shared<Snapshot>(*ticks[6].snapshot);
  s->families[0].series[0].value -= 500;  // a wrap taken for a reset
  ticks[6].snapshot = s;
  const auto c = find(counter_checks(ticks, {0, 5}, {5, 10}, {}), "counter_totals_monotonic");
  ASSERT_TRUE(c && c->pass);
  EXPECT_FALSE(*c->pass);
}

TEST(ValidateChecks, PowerAboveTheZonesLimitOverThreeTicksFails) {
  PowercapZoneFacts zone{"intel-rapl:0", "package", "0", 262143328850.0, 50};
  const auto ok = find(counter_checks(run(20, 5, 45, 5), {0, 5}, {5, 10}, {zone}),
                       "counter_power_plausible_package_0");
  ASSERT_TRUE(ok && ok->pass);
  EXPECT_TRUE(*ok->pass);
  const auto bad = find(counter_checks(run(20, 5, 60, 5), {0, 5}, {5, 10}, {zone}),
                        "counter_power_plausible_package_0");
  ASSERT_TRUE(bad && bad->pass);
  EXPECT_FALSE(*bad->pass);
  EXPECT_NEAR(*bad->value, 60, 1e-9);
}

/// Adds a GPU row (source, device) drawing `watts` to every tick, and the limit its driver
/// states (none when `limit` < 0).
void add_gpu(std::vector<ValidateTick>& ticks, const std::string& source, const std::string& device,
             double watts, double limit) {
  for (size_t i = 0; i < ticks.size(); ++i) {
    auto s = std::make_shared<Snapshot>(*ticks[i].snapshot);
    for (auto& f : s->families) {
      if (f.name == "wattprobe_node_energy_joules_total") {
        f.series.push_back({{{"source", source}, {"domain", "gpu"}, {"socket", device}},
                            watts * ticks[i].seconds});
      }
    }
    if (limit >= 0) {
      Family* f = nullptr;
      for (auto& g : s->families)
        if (g.name == "wattprobe_gpu_power_limit_watts") f = &g;
      if (!f) {
        s->families.push_back({"wattprobe_gpu_power_limit_watts", "", MetricType::gauge, {}});
        f = &s->families.back();
      }
      f->series.push_back({{{"source", source}, {"device", device}}, limit});
    }
    ticks[i].snapshot = s;
  }
}

TEST(ValidateChecks, AGpuUnderItsPowerLimitPasses) {
  auto ticks = run(20, 5, 60, 5);
  add_gpu(ticks, "nvml", "0", 450, 700);
  const auto c =
      find(counter_checks(ticks, {0, 5}, {5, 10}, {}), "counter_power_plausible_gpu_nvml_0");
  ASSERT_TRUE(c && c->pass);
  EXPECT_TRUE(*c->pass);
  EXPECT_NEAR(*c->value, 450, 1e-9);
  EXPECT_EQ(c->bound, 700);
  EXPECT_EQ(c->kind, "max");
  EXPECT_EQ(c->unit, "W");
}

TEST(ValidateChecks, AGpuOverItsPowerLimitFails) {
  auto ticks = run(20, 5, 60, 5);
  add_gpu(ticks, "nvml", "0", 450, 700);
  add_gpu(ticks, "hwmon", "1", 250, 203);
  auto checks = counter_checks(ticks, {0, 5}, {5, 10}, {});
  const auto bad = find(checks, "counter_power_plausible_gpu_hwmon_1");
  ASSERT_TRUE(bad && bad->pass);
  EXPECT_FALSE(*bad->pass);
  EXPECT_NEAR(*bad->value, 250, 1e-9);
  const auto ok = find(checks, "counter_power_plausible_gpu_nvml_0");
  ASSERT_TRUE(ok && ok->pass);
  EXPECT_TRUE(*ok->pass) << "each GPU against its own limit";
}

TEST(ValidateChecks, AGpuThatStatesNoPowerLimitIsNotRunAndSaysWhy) {
  auto ticks = run(20, 5, 60, 5);
  add_gpu(ticks, "nvml", "0", 450, -1);
  auto checks = counter_checks(ticks, {0, 5}, {5, 10}, {});
  const auto c = find(checks, "counter_power_plausible_gpu_nvml_0");
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->pass.has_value());
  EXPECT_NE(c->detail.find("states no power limit"), std::string::npos) << c->detail;
  EXPECT_FALSE(find(checks, "counter_power_plausible_gpu")) << "the placeholder is gone";
}

// A wall meter drawing twice the package: the components cover half of it.
TEST(ValidateChecks, SaysWhatShareOfTheWallTheComponentsCover) {
  auto ticks = run(20, 5, 60, 5);
  for (ValidateTick& t : ticks) {
    auto copy = std::make_shared<Snapshot>(*t.snapshot);
    for (Family& f : copy->families) {
      if (f.name != "wattprobe_node_energy_joules_total") continue;
      double package = f.series.front().value;
      f.series.push_back(
          {{{"source", "redfish"}, {"domain", "platform"}, {"socket", ""}}, 2 * package});
    }
    t.snapshot = copy;
  }
  const auto c = find(counter_checks(ticks, {0, 5}, {5, 10}, {}), "wall_components_share");
  ASSERT_TRUE(c && c->pass && c->value);
  EXPECT_NEAR(*c->value, 0.5, 1e-9);
  EXPECT_TRUE(*c->pass);
  EXPECT_NE(c->detail.find("50.0 % of the wall"), std::string::npos) << c->detail;
}

TEST(ValidateChecks, ASecondMeterMustHoldWhatItCovers) {
  const auto ok = find(counter_checks(run(20, 5, 60, 5, 1.3), {0, 5}, {5, 10}, {}),
                       "counter_second_meter_psys");
  ASSERT_TRUE(ok && ok->pass);
  EXPECT_TRUE(*ok->pass);
  const auto bad = find(counter_checks(run(20, 5, 60, 5, 0.5), {0, 5}, {5, 10}, {}),
                        "counter_second_meter_psys");
  ASSERT_TRUE(bad && bad->pass);
  EXPECT_FALSE(*bad->pass);
  const auto none =
      find(counter_checks(run(20, 5, 60, 5), {0, 5}, {5, 10}, {}), "counter_second_meter");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->pass.has_value()) << "no second meter: not run, with a reason";
  EXPECT_FALSE(none->detail.empty());
}

TEST(ValidateChecks, IdleErrorAgainstTheTruthOrTheEstimateAlone) {
  auto ticks = run(20, 5, 60, 5);
  auto s = std::make_shared<Snapshot>(*ticks.back().snapshot);
  s->families.push_back({"wattprobe_node_idle_power_watts",
                         "",
                         MetricType::gauge,
                         {{{{"source", "rapl_powercap"},
                            {"domain", "package"},
                            {"socket", "0"},
                            {"method", "regression"}},
                           20.6}}});
  ticks.back().snapshot = s;
  const auto judged =
      find(idle_checks(ticks, {{"package", 20}}), "idle_power_rapl_powercap_package_0_error");
  ASSERT_TRUE(judged && judged->pass);
  EXPECT_NEAR(*judged->value, 3.0, 1e-9);
  EXPECT_TRUE(*judged->pass);
  const auto off =
      find(idle_checks(ticks, {{"package", 18}}), "idle_power_rapl_powercap_package_0_error");
  ASSERT_TRUE(off && off->pass);
  EXPECT_FALSE(*off->pass);
  const auto alone = find(idle_checks(ticks, {}), "idle_power_rapl_powercap_package_0");
  ASSERT_TRUE(alone);
  EXPECT_FALSE(alone->pass.has_value());
  EXPECT_EQ(*alone->value, 20.6);
}

}  // namespace
}  // namespace wattprobe
