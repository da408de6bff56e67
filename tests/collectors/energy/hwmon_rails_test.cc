// hwmon's voltage × current rails (collectors/energy/hwmon.h), beside hwmon_test.cc's power and
// energy sensors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "collectors/energy/hwmon.h"
#include "tests/support/fake_device_health.h"
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

TEST(HwmonRails, Ina3221BoardInputIsPlatformAndItsPartsAreRails) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_ina3221_jetson());
  HwmonSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_THAT(a.reason, HasSubstr("ina3221/rail1 (platform total, in1_input x curr1_input, "
                                  "integrated power, VDD_IN)"));
  EXPECT_TRUE(source.measures_cpu());

  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 3u) << "the shunt voltages in4..in6 are no rails";
  const Reading* board = find(s, "ina3221/rail1");
  ASSERT_TRUE(board);
  EXPECT_EQ(board->domain, "platform");
  EXPECT_EQ(board->kind, ReadingKind::power_gauge);
  EXPECT_DOUBLE_EQ(board->watts, testing::kJetsonBoardWatts);
  EXPECT_EQ(find(s, "ina3221/rail2")->domain, "rail");
  EXPECT_EQ(find(s, "ina3221/rail2")->socket, 0);
  EXPECT_DOUBLE_EQ(find(s, "ina3221/rail2")->watts, testing::kJetsonCpuGpuWatts);
  EXPECT_EQ(find(s, "ina3221/rail3")->socket, 1);
  EXPECT_DOUBLE_EQ(find(s, "ina3221/rail3")->watts, testing::kJetsonSocWatts);

  std::vector<Family> families;
  source.append_families(families);
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].name, "wattprobe_hwmon_rail_info");
  ASSERT_EQ(families[0].series.size(), 3u);
  for (const Series& series : families[0].series) {
    EXPECT_EQ(series.labels.back(),
              (std::pair<std::string, std::string>{"energy", "integrated_power"}));
  }
}

TEST(HwmonRails, WithoutBoardInputThePlatformFigureIsTheSumOfRails) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_ina3221_without_input());
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 4u);
  const Reading* sum = find(s, "ina3221/rails_sum");
  ASSERT_TRUE(sum);
  EXPECT_EQ(sum->domain, "platform");
  EXPECT_NEAR(sum->watts,
              testing::kJetsonBoardWatts + testing::kJetsonCpuGpuWatts + testing::kJetsonSocWatts,
              1e-12);
  EXPECT_EQ(find(s, "ina3221/rail1")->domain, "rail");
}

TEST(HwmonRails, UnreadableRailLeavesTheSumOutNeverShort) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_ina3221_without_input());
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  SysfsWriter(tree).write(hwmon_file(0, "curr2_input"), "n/a\n");
  Sample s = source.sample();
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_THAT(s.errors[0].message(), HasSubstr("curr2_input"));
  EXPECT_FALSE(find(s, "ina3221/rails_sum"));
  EXPECT_TRUE(find(s, "ina3221/rail1"));
}

TEST(HwmonRails, OtherDriversPairOnlyMatchingLabels) {
  TempTree tree;
  testing::write_hwmon(
      SysfsWriter(tree),
      testing::HwmonScenario{{testing::FakeHwmonChip{7,
                                                     "some_pmic",
                                                     "devices/platform/pmic.0",
                                                     {{"in1_input", "5000\n"},
                                                      {"in1_label", "VSYS\n"},
                                                      {"curr1_input", "2000\n"},
                                                      {"curr1_label", "VSYS\n"},
                                                      {"in2_input", "3300\n"},
                                                      {"in2_label", "V3P3\n"},
                                                      {"curr2_input", "100\n"}}}}});
  HwmonSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_THAT(a.reason, HasSubstr("in2/curr2 not paired"));
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].domain, "platform");
  EXPECT_DOUBLE_EQ(s.readings[0].watts, 10.0);
}

TEST(HwmonRails, ChipWithPowerSensorsIsNotReadAsRails) {
  TempTree tree;
  auto scenario = testing::hwmon_ina3221_jetson();
  scenario.chips[0].files.emplace_back("power1_input", "9400000\n");
  testing::write_hwmon(SysfsWriter(tree), scenario);
  HwmonSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].key, "ina3221/power1");
}

}  // namespace
}  // namespace wattprobe
