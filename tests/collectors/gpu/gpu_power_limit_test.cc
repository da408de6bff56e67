#include "collectors/gpu/gpu_power_limit.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wattprobe {
namespace {

TEST(GpuPowerLimit, HwmonMicrowattsAreWatts) {
  auto w = parse_hwmon_power_limit("203000000\n", "/sys/class/hwmon/hwmon5/power1_cap");
  ASSERT_TRUE(w.ok()) << w.error().message();
  ASSERT_TRUE(w->has_value());
  EXPECT_DOUBLE_EQ(**w, 203.0);
}

TEST(GpuPowerLimit, HwmonZeroIsALimitThatIsOff) {
  auto w = parse_hwmon_power_limit("0\n", "/sys/class/hwmon/hwmon4/power1_max");
  ASSERT_TRUE(w.ok());
  EXPECT_FALSE(w->has_value());
}

TEST(GpuPowerLimit, MalformedOrAbsurdTextIsRefusedNamingTheFileAndValue) {
  for (const char* bad : {"", "abc\n", "-5\n", "203 W\n", "2.03e8\n", "10000000001\n"}) {
    auto w = parse_hwmon_power_limit(bad, "/sys/class/hwmon/hwmon5/power1_cap");
    ASSERT_FALSE(w.ok()) << bad;
    EXPECT_EQ(w.error().kind, ErrorKind::malformed) << bad;
    EXPECT_EQ(w.error().path, "/sys/class/hwmon/hwmon5/power1_cap") << bad;
  }
  auto huge = parse_hwmon_power_limit("10000000001\n", "power1_cap");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().detail.find("10000000001 µW"), std::string::npos) << huge.error().detail;
}

TEST(GpuPowerLimit, TheBoundIsAboveZeroAndAtMostTenKilowatts) {
  EXPECT_TRUE(checked_gpu_power_limit(700, "nvml:0").ok());
  EXPECT_TRUE(checked_gpu_power_limit(kMaxGpuPowerLimitWatts, "nvml:0").ok());
  EXPECT_FALSE(checked_gpu_power_limit(0, "nvml:0").ok());
  EXPECT_FALSE(checked_gpu_power_limit(kMaxGpuPowerLimitWatts + 0.001, "nvml:0").ok());
  auto bad = checked_gpu_power_limit(4294967.295, "nvml:1");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().path, "nvml:1");
}

TEST(GpuPowerLimit, TheFamilyHasOneSeriesPerGpuThatStatesALimit) {
  std::vector<Family> out;
  append_gpu_power_limit_family(
      {{"nvml", 0, 700.0, ""}, {"nvml", 1, std::nullopt, "NOT_SUPPORTED"}, {"hwmon", 0, 203.0, ""}},
      out);
  ASSERT_EQ(out.size(), 1u);
  const Family& f = out[0];
  EXPECT_EQ(f.name, "wattprobe_gpu_power_limit_watts");
  EXPECT_EQ(f.type, MetricType::gauge);
  ASSERT_EQ(f.series.size(), 2u);
  EXPECT_EQ(f.series[0].labels.get(), (Labels{{"source", "nvml"}, {"device", "0"}}));
  EXPECT_DOUBLE_EQ(f.series[0].value, 700.0);
  EXPECT_EQ(f.series[1].labels.get(), (Labels{{"source", "hwmon"}, {"device", "0"}}));
  EXPECT_DOUBLE_EQ(f.series[1].value, 203.0);
}

}  // namespace
}  // namespace wattprobe
