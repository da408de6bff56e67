#include "collectors/health/battery.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/support/fake_device_health.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::SysfsWriter;
using testing::TempTree;

std::string problems(const BatteryHealth& b) {
  std::string out;
  for (const Error& e : b.problems) out += e.message() + "\n";
  return out;
}

TEST(Battery, LaptopWithEnergyAndChargeBatteries) {
  TempTree tree;
  testing::write_laptop_batteries(SysfsWriter(tree));
  BatteryScan scan = read_batteries(tree.paths());
  ASSERT_EQ(scan.batteries.size(), 2u) << "the AC adapter is no battery";
  const BatteryHealth& bat0 = scan.batteries[0];
  EXPECT_EQ(bat0.name, "BAT0");
  ASSERT_TRUE(bat0.capacity_ratio);
  EXPECT_DOUBLE_EQ(*bat0.capacity_ratio, testing::kBat0CapacityRatio);
  EXPECT_EQ(bat0.capacity_from, "energy");
  EXPECT_EQ(bat0.cycle_count, 312u);
  EXPECT_TRUE(bat0.discharging);
  EXPECT_DOUBLE_EQ(bat0.discharge_watts.value(), testing::kBat0Watts);
  EXPECT_EQ(bat0.power_from, "power_now");
  EXPECT_TRUE(bat0.problems.empty()) << problems(bat0);

  const BatteryHealth& bat1 = scan.batteries[1];
  EXPECT_EQ(bat1.name, "BAT1");
  EXPECT_DOUBLE_EQ(bat1.capacity_ratio.value(), testing::kBat1CapacityRatio);
  EXPECT_EQ(bat1.capacity_from, "charge");
  EXPECT_EQ(bat1.cycle_count, 57u);
  EXPECT_NEAR(bat1.discharge_watts.value(), testing::kBat1Watts, 1e-9);
  EXPECT_EQ(bat1.power_from, "current_now x voltage_now");
  EXPECT_TRUE(bat1.problems.empty()) << problems(bat1);
}

TEST(Battery, ChargingBatteryGivesNoPower) {
  TempTree tree;
  testing::write_laptop_batteries(SysfsWriter(tree));
  tree.write("sys/class/power_supply/BAT0/status", "Charging\n");
  BatteryScan scan = read_batteries(tree.paths());
  EXPECT_FALSE(scan.batteries[0].discharging);
  EXPECT_EQ(scan.batteries[0].discharge_watts, 0.0);
}

TEST(Battery, NegativeCurrentWhileDischargingCountsAsItsMagnitude) {
  TempTree tree;
  testing::write_laptop_batteries(SysfsWriter(tree));
  // Some fuel-gauge drivers report a discharging current below zero.
  tree.write("sys/class/power_supply/BAT1/current_now", "-1200000\n");
  EXPECT_NEAR(read_batteries(tree.paths()).batteries[1].discharge_watts.value(),
              testing::kBat1Watts, 1e-9);
}

TEST(Battery, MalformedValuesGiveReasonsAndNoRatio) {
  TempTree tree;
  testing::write_malformed_batteries(SysfsWriter(tree));
  BatteryScan scan = read_batteries(tree.paths());
  ASSERT_EQ(scan.batteries.size(), 3u);
  for (const BatteryHealth& b : scan.batteries) {
    EXPECT_FALSE(b.capacity_ratio) << b.name;
    EXPECT_FALSE(b.problems.empty()) << b.name;
  }
  EXPECT_THAT(problems(scan.batteries[0]), HasSubstr("BAT0/energy_full_design: absent: missing"));
  EXPECT_THAT(problems(scan.batteries[1]),
              HasSubstr("charge_full_design: malformed: 0 is not a usable design capacity"));
  EXPECT_THAT(problems(scan.batteries[2]), HasSubstr("BAT2/energy_full: malformed"));
  EXPECT_THAT(problems(scan.batteries[2]), HasSubstr("garbage"));
  EXPECT_THAT(problems(scan.batteries[2]), HasSubstr("BAT2/cycle_count: malformed"));
  EXPECT_FALSE(scan.batteries[2].cycle_count);
  // Discharging without power_now or current_now: power unknown, said so.
  EXPECT_FALSE(scan.batteries[2].discharge_watts);
  EXPECT_THAT(problems(scan.batteries[2]), HasSubstr("its power is unknown"));
}

TEST(Battery, MachineWithoutBatteriesSaysWhy) {
  TempTree tree;
  EXPECT_THAT(read_batteries(tree.paths()).none_reason, HasSubstr("no "));
  tree.write("sys/class/power_supply/AC/type", "Mains\n");
  BatteryScan scan = read_batteries(tree.paths());
  EXPECT_TRUE(scan.batteries.empty());
  EXPECT_EQ(scan.none_reason, "1 power supply, none of type Battery");
}

}  // namespace
}  // namespace wattprobe
