#include "collectors/energy/hwmon.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::hwmon_file;
using testing::SysfsWriter;
using testing::TempTree;

const Reading* find(const Sample& s, std::string_view key) {
  for (const auto& r : s.readings)
    if (r.key == key) return &r;
  return nullptr;
}

TEST(Hwmon, AcpiPowerMeterIsAPlatformGaugeInWatts) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_acpi_power_meter());
  HwmonSource source(tree.paths());
  EXPECT_EQ(source.name(), "hwmon");
  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_THAT(a.reason, HasSubstr("1 sensor: power_meter/power1 (platform, power1_average)"));

  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 1u);  // acpitz has only temperatures
  const Reading& r = s.readings[0];
  EXPECT_EQ(r.key, "power_meter/power1");
  EXPECT_EQ(r.domain, "platform");
  EXPECT_EQ(r.socket, -1);
  EXPECT_EQ(r.kind, ReadingKind::power_gauge);
  EXPECT_DOUBLE_EQ(r.watts, 182.5);

  SysfsWriter(tree).write(hwmon_file(1, "power1_average"), "97250000\n");
  EXPECT_DOUBLE_EQ(source.sample().readings.at(0).watts, 97.25);
}

TEST(Hwmon, PrefersPowerAverageOverPowerInput) {
  TempTree tree;
  auto scenario = testing::hwmon_acpi_power_meter();
  scenario.chips[1].files.emplace_back("power1_input", "150000000\n");
  scenario.chips[1].files.emplace_back("power2_input", "5000000\n");
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 2u);
  EXPECT_DOUBLE_EQ(find(s, "power_meter/power1")->watts, 182.5);
  EXPECT_DOUBLE_EQ(find(s, "power_meter/power2")->watts, 5.0);
}

TEST(Hwmon, AmdEnergyGivesPerSocketPackageCountersAndSkipsPerCore) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_amd_energy());
  HwmonSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_THAT(a.reason, HasSubstr("skipped 4 amd_energy per-core counters (Ecore*): the "
                                  "per-socket counters cover them"));
  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 2u);
  const Reading* s0 = find(s, "amd_energy/energy5");
  const Reading* s1 = find(s, "amd_energy/energy6");
  ASSERT_NE(s0, nullptr);
  ASSERT_NE(s1, nullptr);
  EXPECT_EQ(s0->domain, "package");
  EXPECT_EQ(s0->socket, 0);
  EXPECT_EQ(s1->socket, 1);
  EXPECT_EQ(s0->kind, ReadingKind::energy_counter);
  EXPECT_EQ(s0->raw, 70000000000123u);
  EXPECT_EQ(s0->modulus, 0u);  // the driver accumulates to 64 bits
  EXPECT_DOUBLE_EQ(s0->unit_joules, 1e-6);
  EXPECT_EQ(s1->raw, 70000000000456u);
}

TEST(Hwmon, EnergyCounterOfAnOtherChipIsPlatformAndPowerOnTheSameChipIsNotCountedTwice) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back({4,
                            "nct6798",
                            "devices/platform/nct6775.656",
                            {{"energy1_input", "123456789\n"}, {"power1_input", "20000000\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("power sensors ignored"));
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].key, "nct6798/energy1");
  EXPECT_EQ(s.readings[0].domain, "platform");
  EXPECT_EQ(s.readings[0].raw, 123456789u);
}

TEST(Hwmon, GpuChipsAreTheGpuDomain) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back({5,
                            "amdgpu",
                            "devices/pci0000:00/0000:03:00.0",
                            {{"power1_average", "35000000\n"}, {"power1_label", "PPT\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].domain, "gpu");
  EXPECT_DOUBLE_EQ(s.readings[0].watts, 35.0);
  EXPECT_EQ(source.sensors().at(0).label, "PPT");
}

// The GPU's limit is its power1_cap (the cap in force), never power1_cap_max (the largest cap
// one may set), in µW; its device is the gpu row's socket.
TEST(Hwmon, AGpuChipsPowerLimitIsItsPowerCap) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_amdgpu());
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  std::vector<GpuPowerLimit> limits = source.gpu_power_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_EQ(limits[0].source, "hwmon");
  EXPECT_EQ(limits[0].device, s.readings[0].socket);
  ASSERT_TRUE(limits[0].watts.has_value()) << limits[0].why;
  EXPECT_DOUBLE_EQ(*limits[0].watts, 203.0);
  // An administrator lowers the cap: the next sample has the new one.
  SysfsWriter(tree).write(hwmon_file(5, "power1_cap"), "150500000\n");
  (void)source.sample();
  EXPECT_DOUBLE_EQ(*source.gpu_power_limits()[0].watts, 150.5);
}

TEST(Hwmon, AGpuChipWithoutAPowerCapStatesNoLimitAndSaysWhy) {
  TempTree tree;
  auto scenario = testing::hwmon_amdgpu();
  auto& files = scenario.chips[0].files;
  files.erase(std::remove_if(files.begin(), files.end(),
                             [](const auto& f) { return f.first == "power1_cap"; }),
              files.end());
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 1u) << "the GPU still measures";
  auto limits = source.gpu_power_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_FALSE(limits[0].watts.has_value()) << "power1_cap_max is no limit in force";
  EXPECT_THAT(limits[0].why, HasSubstr("no power1_cap"));
}

// A malformed cap is no limit: the last good one stays, the why names the file and the text, and
// the GPU's energy is read as before.
TEST(Hwmon, AMalformedPowerCapIsRefusedAndTheLastGoodOneStays) {
  for (const char* bad : {"", "abc\n", "-5\n", "2.5e8\n", "99999999999999\n"}) {
    TempTree tree;
    testing::write_hwmon(SysfsWriter(tree), testing::hwmon_amdgpu());
    HwmonSource source(tree.paths());
    ASSERT_TRUE(source.probe().available);
    (void)source.sample();
    SysfsWriter(tree).write(hwmon_file(5, "power1_cap"), bad);
    Sample s = source.sample();
    EXPECT_TRUE(s.errors.empty()) << "a bad cap is no energy error";
    ASSERT_EQ(s.readings.size(), 1u);
    ASSERT_TRUE(source.gpu_power_limits()[0].watts.has_value()) << bad;
    EXPECT_DOUBLE_EQ(*source.gpu_power_limits()[0].watts, 203.0) << bad;
  }
  for (const char* bad : {"abc\n", "99999999999999\n"}) {
    TempTree tree;
    testing::write_hwmon(SysfsWriter(tree), testing::hwmon_amdgpu());
    SysfsWriter(tree).write(hwmon_file(5, "power1_cap"), bad);
    HwmonSource source(tree.paths());
    ASSERT_TRUE(source.probe().available);
    (void)source.sample();
    auto limits = source.gpu_power_limits();
    EXPECT_FALSE(limits[0].watts.has_value()) << bad;
    EXPECT_THAT(limits[0].why, HasSubstr("hwmon5/power1_cap")) << bad;
  }
}

// i915 and xe have no cap: their limit is PL1 in power1_max, and 0 there means PL1 is off.
TEST(Hwmon, IntelGpusStateTheirSustainedLimitInPowerMax) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back({4,
                            "i915",
                            "devices/pci0000:00/0000:00:02.0",
                            {{"energy1_input", "123456789\n"}, {"power1_max", "35000000\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  (void)source.sample();
  ASSERT_TRUE(source.gpu_power_limits().at(0).watts.has_value());
  EXPECT_DOUBLE_EQ(*source.gpu_power_limits()[0].watts, 35.0);
  SysfsWriter(tree).write(hwmon_file(4, "power1_max"), "0\n");
  (void)source.sample();
  EXPECT_FALSE(source.gpu_power_limits()[0].watts.has_value());
  EXPECT_THAT(source.gpu_power_limits()[0].why, HasSubstr("the limit is off"));
}

TEST(Hwmon, KeysSurviveRenumberingAndTwoChipsOfOneNameAreToldApartByDevice) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back(
      {7, "power_meter", "devices/LNXSYSTM:00/ACPI000D:00", {{"power1_average", "100000000\n"}}});
  scenario.chips.push_back(
      {2, "power_meter", "devices/LNXSYSTM:00/ACPI000D:01", {{"power1_average", "50000000\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 2u);
  EXPECT_DOUBLE_EQ(find(s, "power_meter@ACPI000D:00/power1")->watts, 100.0);
  EXPECT_DOUBLE_EQ(find(s, "power_meter@ACPI000D:01/power1")->watts, 50.0);
}

TEST(Hwmon, MalformedValueIsANamedErrorAndOtherSensorsStillRead) {
  for (const char* bad : {"", "abc\n", "-5\n"}) {
    TempTree tree;
    testing::write_hwmon(SysfsWriter(tree), testing::hwmon_amd_energy());
    HwmonSource source(tree.paths());
    ASSERT_TRUE(source.probe().available);
    SysfsWriter(tree).write(hwmon_file(2, "energy6_input"), bad);
    Sample s = source.sample();
    ASSERT_EQ(s.errors.size(), 1u) << bad;
    EXPECT_EQ(s.errors[0].kind, ErrorKind::malformed);
    EXPECT_THAT(s.errors[0].path, HasSubstr("hwmon2/energy6_input"));
    ASSERT_EQ(s.readings.size(), 1u);
    EXPECT_EQ(s.readings[0].raw, 70000000000123u);
  }
}

TEST(Hwmon, ChipThatDisappearsIsAnAbsentError) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_acpi_power_meter());
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  tree.remove("sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00");
  Sample s = source.sample();
  EXPECT_TRUE(s.readings.empty());
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].kind, ErrorKind::absent);
}

TEST(Hwmon, NoSensorsSaysWhichChipsWereSeen) {
  TempTree tree;
  auto scenario = testing::hwmon_acpi_power_meter();
  scenario.chips.pop_back();
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  Availability a = source.probe();
  EXPECT_FALSE(a.available);
  EXPECT_EQ(a.reason, "no hwmon power or energy sensors (chips: acpitz)");

  TempTree empty;
  HwmonSource none(empty.paths());
  EXPECT_THAT(none.probe().reason, HasSubstr("CONFIG_HWMON"));
}

TEST(Hwmon, OldDriversKeepTheirAttributesInTheDeviceFolder) {
  TempTree tree;
  SysfsWriter out(tree);
  // Before hwmon_device_register_with_info, drivers put name and sensors on the parent device.
  out.write("sys/devices/platform/fam15h_power.0/name", "fam15h_power\n");
  out.write("sys/devices/platform/fam15h_power.0/power1_input", "45500000\n");
  tree.mkdir("sys/devices/platform/fam15h_power.0/hwmon/hwmon6");
  out.symlink("../../../fam15h_power.0", "sys/devices/platform/fam15h_power.0/hwmon/hwmon6/device");
  out.symlink("../../devices/platform/fam15h_power.0/hwmon/hwmon6", "sys/class/hwmon/hwmon6");
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].key, "fam15h_power/power1");
  EXPECT_DOUBLE_EQ(s.readings[0].watts, 45.5);
}

TEST(Hwmon, MatchesTheHostsOwnHwmonTree) {
  HwmonSource source(HostPaths{});
  Availability a = source.probe();
  if (!a.available) GTEST_SKIP() << "this host has no hwmon power sensor: " << a.reason;
  EXPECT_FALSE(source.sample().readings.empty());
}

}  // namespace
}  // namespace wattprobe
