#include "collectors/health/thermal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/fake_device_health.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::SysfsWriter;
using testing::TempTree;

TEST(Thermal, ThrottleCountsSumCoresAndCountEachPackageOnce) {
  TempTree tree;
  testing::write_throttle_counters(SysfsWriter(tree));
  ThrottleCounts t = read_throttle_counts(tree.paths());
  EXPECT_TRUE(t.found);
  EXPECT_EQ(t.core_events, testing::kCoreThrottleEvents);
  ASSERT_EQ(t.package_events.size(), 2u);
  EXPECT_EQ(t.package_events[0], (std::pair<int, uint64_t>{0, 11}));
  EXPECT_EQ(t.package_events[1], (std::pair<int, uint64_t>{1, 2}));
  EXPECT_TRUE(t.problems.empty());
}

TEST(Thermal, GarbledThrottleCounterIsNamedAndSkipped) {
  TempTree tree;
  testing::write_throttle_counters(SysfsWriter(tree));
  tree.write("sys/devices/system/cpu/cpu3/thermal_throttle/core_throttle_count", "lots\n");
  ThrottleCounts t = read_throttle_counts(tree.paths());
  EXPECT_EQ(t.core_events, 8u);
  ASSERT_EQ(t.problems.size(), 1u);
  EXPECT_THAT(t.problems[0].message(), HasSubstr("cpu3/thermal_throttle/core_throttle_count"));
}

TEST(Thermal, NoThrottleFolderSaysWhy) {
  TempTree tree;
  tree.write("sys/devices/system/cpu/cpu0/online", "1\n");
  ThrottleCounts t = read_throttle_counts(tree.paths());
  EXPECT_FALSE(t.found);
  EXPECT_THAT(t.none_reason, HasSubstr("thermal_throttle"));
}

TEST(Thermal, HottestSensorPerDevice) {
  TempTree tree;
  testing::write_temperatures(SysfsWriter(tree));
  Temperatures t = read_temperatures(tree.paths());
  ASSERT_EQ(t.devices.size(), 3u);
  EXPECT_EQ(t.devices[0].device, "acpitz");
  EXPECT_DOUBLE_EQ(t.devices[0].celsius, 52.0);
  EXPECT_EQ(t.devices[1].device, "coretemp");
  EXPECT_EQ(t.devices[1].sensor, "Package id 0");
  EXPECT_DOUBLE_EQ(t.devices[1].celsius, 71.0);
  EXPECT_EQ(t.devices[2].device, "nvme");
  EXPECT_DOUBLE_EQ(t.devices[2].celsius, 45.85);
}

TEST(Thermal, ThermalZoneShownByHwmonIsCountedOnce) {
  TempTree tree;
  SysfsWriter out(tree);
  testing::write_temperatures(out);
  testing::write_hwmon(
      out,
      testing::HwmonScenario{{testing::FakeHwmonChip{
          5, "acpitz", "devices/virtual/thermal/thermal_zone0", {{"temp1_input", "50000\n"}}}}});
  Temperatures t = read_temperatures(tree.paths());
  ASSERT_EQ(t.devices.size(), 3u);
  EXPECT_EQ(t.devices[0].device, "acpitz");
  EXPECT_EQ(t.devices[0].sensor, "temp1");
  EXPECT_DOUBLE_EQ(t.devices[0].celsius, 50.0);
}

TEST(Thermal, ImpossibleTemperatureIsSkippedWithReason) {
  TempTree tree;
  testing::write_temperatures(SysfsWriter(tree));
  tree.write("sys/class/hwmon/hwmon3/temp1_input", "-274000\n");
  Temperatures t = read_temperatures(tree.paths());
  ASSERT_EQ(t.problems.size(), 1u);
  EXPECT_THAT(t.problems[0].message(), HasSubstr("outside any real temperature"));
  EXPECT_EQ(t.devices[1].sensor, "Core 0");
}

}  // namespace
}  // namespace wattprobe
