#include "agent/device_health.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/fake_device_health.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::SysfsWriter;
using testing::TempTree;

const Family* family(const std::vector<Family>& fs, std::string_view name) {
  for (const Family& f : fs)
    if (f.name == name) return &f;
  return nullptr;
}

double value(const Family* f, std::string_view label, std::string_view want) {
  for (const Series& s : f->series) {
    for (const auto& [k, v] : s.labels)
      if (k == label && v == want) return s.value;
  }
  ADD_FAILURE() << f->name << " has no " << label << "=" << want;
  return -1;
}

TEST(DeviceHealth, ExportsBatteriesThrottleAndTemperatures) {
  TempTree tree;
  SysfsWriter out(tree);
  testing::write_laptop_batteries(out);
  testing::write_throttle_counters(out);
  testing::write_temperatures(out);
  tree.write("proc/uptime", "86400.50 170000.00\n");
  DeviceHealth health(tree.paths(), std::nullopt);
  std::vector<std::string> logged;
  auto log = [&](const std::string& l) { logged.push_back(l); };
  health.tick(0, 0, log);
  health.tick(2.0, 2000, log);
  EXPECT_TRUE(logged.empty()) << logged.front();

  std::vector<Family> fs;
  health.append_families(fs);
  const Family* ratio = family(fs, "wattprobe_device_battery_capacity_ratio");
  ASSERT_TRUE(ratio);
  EXPECT_DOUBLE_EQ(value(ratio, "battery", "BAT0"), testing::kBat0CapacityRatio);
  EXPECT_DOUBLE_EQ(value(ratio, "battery", "BAT1"), testing::kBat1CapacityRatio);
  EXPECT_EQ(value(family(fs, "wattprobe_device_battery_cycle_count"), "battery", "BAT0"), 312);
  const Family* joules = family(fs, "wattprobe_device_battery_discharge_joules_total");
  ASSERT_TRUE(joules);
  EXPECT_EQ(joules->type, MetricType::counter);
  // The first tick primes; the second integrates its 2 s.
  EXPECT_DOUBLE_EQ(value(joules, "battery", "BAT0"), testing::kBat0Watts * 2);
  EXPECT_NEAR(value(joules, "battery", "BAT1"), testing::kBat1Watts * 2, 1e-9);
  const Family* throttle = family(fs, "wattprobe_device_thermal_throttle_events_total");
  ASSERT_TRUE(throttle);
  EXPECT_EQ(value(throttle, "scope", "core"), testing::kCoreThrottleEvents);
  EXPECT_EQ(value(throttle, "package", "1"), 2);
  const Family* temps = family(fs, "wattprobe_device_temperature_max_celsius");
  ASSERT_TRUE(temps);
  EXPECT_DOUBLE_EQ(value(temps, "device", "coretemp"), 71.0);
  const Family* uptime = family(fs, "wattprobe_device_uptime_seconds");
  ASSERT_TRUE(uptime);
  EXPECT_DOUBLE_EQ(uptime->series.at(0).value, 86400.5);
}

TEST(DeviceHealth, KeepsTheLastGoodCapacityWhenAReadFails) {
  TempTree tree;
  testing::write_laptop_batteries(SysfsWriter(tree));
  DeviceHealth health(tree.paths(), std::nullopt);
  health.tick(0, 0, {});
  tree.write("sys/class/power_supply/BAT0/energy_full", "oops\n");
  std::vector<std::string> logged;
  health.tick(1, 1000, [&](const std::string& l) { logged.push_back(l); });
  health.tick(1, 2000, [&](const std::string& l) { logged.push_back(l); });
  ASSERT_EQ(logged.size(), 1u) << "a problem is logged once, not every tick";
  EXPECT_THAT(logged[0], HasSubstr("BAT0/energy_full: malformed"));
  std::vector<Family> fs;
  health.append_families(fs);
  EXPECT_DOUBLE_EQ(value(family(fs, "wattprobe_device_battery_capacity_ratio"), "battery", "BAT0"),
                   testing::kBat0CapacityRatio);
}

TEST(DeviceHealth, MalformedBatteriesGiveNoSeriesAndDoctorSaysWhy) {
  TempTree tree;
  testing::write_malformed_batteries(SysfsWriter(tree));
  DeviceHealth health(tree.paths(), std::nullopt);
  std::string report = health.doctor_report(0);
  std::vector<Family> fs;
  health.append_families(fs);
  EXPECT_FALSE(family(fs, "wattprobe_device_battery_capacity_ratio"));
  EXPECT_FALSE(family(fs, "wattprobe_device_battery_cycle_count"));
  EXPECT_THAT(report, HasSubstr("battery BAT0: capacity against design unknown"));
  EXPECT_THAT(report, HasSubstr("0 is not a usable design capacity"));
  EXPECT_THAT(report, HasSubstr("garbage"));
}

TEST(DeviceHealth, MachineWithNoneOfTheseExportsNothingAndSaysWhy) {
  TempTree tree;
  DeviceHealth health(tree.paths(), std::nullopt);
  std::string report = health.doctor_report(0);
  std::vector<Family> fs;
  health.append_families(fs);
  EXPECT_TRUE(fs.empty()) << fs.front().name;
  EXPECT_THAT(report, HasSubstr("batteries: none"));
  EXPECT_THAT(report, HasSubstr("thermal throttling: not counted"));
  EXPECT_THAT(report, HasSubstr("temperatures: none"));
  EXPECT_THAT(report, HasSubstr("storage wear: none"));
  EXPECT_THAT(report, HasSubstr("powered-on share of age: unknown - no --install-date"));
}

}  // namespace
}  // namespace wattprobe
