#include "collectors/energy/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

// /proc/stat of a 4-vCPU guest whose aggregate line has `user` busy ticks and `idle` idle ticks.
std::string four_vcpus(uint64_t user, uint64_t idle) {
  std::string text =
      "cpu  " + std::to_string(user) + " 0 0 " + std::to_string(idle) + " 0 0 0 0 0 0\n";
  for (int cpu = 0; cpu < 4; ++cpu) {
    text += "cpu" + std::to_string(cpu) + " " + std::to_string(user / 4) + " 0 0 " +
            std::to_string(idle / 4) + " 0 0 0 0 0 0\n";
  }
  return text + "intr 0\nctxt 0\n";
}

double sampled_watts(EnergySource& source) {
  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty()) << s.errors.front().message();
  EXPECT_EQ(s.readings.size(), 1u);
  if (s.readings.empty()) return std::nan("");
  const Reading& r = s.readings.front();
  EXPECT_EQ(r.kind, ReadingKind::power_gauge);
  EXPECT_EQ(r.domain, "package");
  EXPECT_EQ(r.socket, -1);
  EXPECT_EQ(r.key, "cpu");
  return r.watts;
}

TEST(Model, IsAnEstimateNamedModel) {
  testing::TempTree tree;
  auto source = make_model_source(tree.paths(), ModelOptions{});
  EXPECT_EQ(source->name(), "model");
  EXPECT_FALSE(source->measured());
}

TEST(Model, FourVcpusAtQuarterUtilisationDrawCcfAverageWatts) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(1000, 3000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  ASSERT_TRUE(source->probe().available);
  sampled_watts(*source);
  // Next tick: 100 busy of 400 ticks = 25 %.
  tree.write("proc/stat", four_vcpus(1100, 3300));
  EXPECT_NEAR(sampled_watts(*source), 4 * (0.74 + 0.25 * (3.5 - 0.74)), 1e-12);  // 5.72 W
}

TEST(Model, FirstSampleUsesUtilisationSinceBoot) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(1000, 3000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  EXPECT_NEAR(sampled_watts(*source), 5.72, 1e-12);
}

TEST(Model, IdleAndFullyBusyGiveMinAndMaxPerVcpu) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(1000, 3000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  sampled_watts(*source);
  tree.write("proc/stat", four_vcpus(1000, 3400));
  EXPECT_NEAR(sampled_watts(*source), 4 * 0.74, 1e-12);
  tree.write("proc/stat", four_vcpus(1400, 3400));
  EXPECT_NEAR(sampled_watts(*source), 4 * 3.5, 1e-12);
}

TEST(Model, CountersGoingBackwardsAreAResetNotNegativeUtilisation) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(100000, 300000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  sampled_watts(*source);
  // A restored snapshot: counters far below the previous ones; 50 of 100 ticks busy since.
  tree.write("proc/stat", four_vcpus(200, 200));
  EXPECT_NEAR(sampled_watts(*source), 4 * (0.74 + 0.5 * 2.76), 1e-12);
  tree.write("proc/stat", four_vcpus(200, 600));
  EXPECT_NEAR(sampled_watts(*source), 4 * 0.74, 1e-12);
}

TEST(Model, NoTicksSinceLastSampleKeepsTheLastFigure) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(1000, 3000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  double first = sampled_watts(*source);
  EXPECT_NEAR(sampled_watts(*source), first, 1e-12);
}

TEST(Model, CustomCoefficients) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(0, 4000));
  ModelOptions haswell{1.0, 4.74};
  auto source = make_model_source(tree.paths(), haswell);
  EXPECT_NE(source->probe().reason.find("4 vCPUs × (1 + util × (4.74 − 1)) W"), std::string::npos)
      << source->probe().reason;
  sampled_watts(*source);
  tree.write("proc/stat", four_vcpus(300, 4100));  // 300 of 400: 75 %
  EXPECT_NEAR(sampled_watts(*source), 4 * (1.0 + 0.75 * 3.74), 1e-12);
}

TEST(Model, ProbeExplainsTheEstimate) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(0, 4000));
  auto source = make_model_source(tree.paths(), ModelOptions{});
  Availability a = source->probe();
  EXPECT_TRUE(a.available);
  EXPECT_EQ(a.reason,
            "estimate: 4 vCPUs × (0.74 + util × (3.5 − 0.74)) W (Cloud Carbon Footprint AWS "
            "average)");
}

TEST(Model, MalformedProcStatIsAnErrorNotAReading) {
  testing::TempTree tree;
  tree.write("proc/stat", "cpu  1 2 three 4\ncpu0 1 2 3 4\n");
  auto source = make_model_source(tree.paths(), ModelOptions{});
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("proc/stat"), std::string::npos) << a.reason;
  Sample s = source->sample();
  EXPECT_TRUE(s.readings.empty());
  ASSERT_EQ(s.errors.size(), 1u);
  EXPECT_EQ(s.errors[0].kind, ErrorKind::malformed);
  EXPECT_NE(s.errors[0].message().find("three"), std::string::npos);
}

TEST(Model, MissingProcStatIsUnavailable) {
  testing::TempTree tree;
  auto source = make_model_source(tree.paths(), ModelOptions{});
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("absent"), std::string::npos) << a.reason;
}

TEST(Model, ValidateRejectsNegativeInvertedAndNonFiniteCoefficients) {
  EXPECT_TRUE(validate(ModelOptions{}).ok());
  EXPECT_TRUE(validate(ModelOptions{0, 0}).ok());
  EXPECT_FALSE(validate(ModelOptions{-0.1, 3.5}).ok());
  auto inverted = validate(ModelOptions{4, 3.5});
  ASSERT_FALSE(inverted.ok());
  EXPECT_NE(inverted.error().message().find("max_watts_per_vcpu"), std::string::npos);
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_FALSE(validate(ModelOptions{0.74, inf}).ok());
  EXPECT_FALSE(validate(ModelOptions{std::nan(""), 3.5}).ok());
}

TEST(Model, ProbeRefusesInvalidOptions) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(0, 4000));
  auto source = make_model_source(tree.paths(), ModelOptions{5, 1});
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("invalid options"), std::string::npos);
}

TEST(Model, EstimatesThisHostFromItsRealProcStat) {
  auto source = make_model_source(HostPaths{}, ModelOptions{});
  ASSERT_TRUE(source->probe().available);
  Sample s = source->sample();
  ASSERT_EQ(s.readings.size(), 1u);
  int vcpus = 0;
  auto stat = read_proc_stat(HostPaths{});
  ASSERT_TRUE(stat.ok());
  vcpus = stat->online_cpus();
  EXPECT_GE(s.readings[0].watts, vcpus * 0.74 - 1e-9);
  EXPECT_LE(s.readings[0].watts, vcpus * 3.5 + 1e-9);
}

TEST(Model, BoardFiguresEstimateTheWholeBoardAsPlatform) {
  testing::TempTree tree;
  tree.write("proc/stat", four_vcpus(100, 300));  // 25 % busy since boot
  ModelOptions o;
  o.board_idle_watts = 2.7;
  o.board_max_watts = 6.4;
  auto source = make_model_source(tree.paths(), o);
  Availability a = source->probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("estimate of the whole board (platform)"), std::string::npos);
  EXPECT_FALSE(source->measured());
  Sample s = source->sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].domain, "platform");
  EXPECT_EQ(s.readings[0].key, "board");
  EXPECT_DOUBLE_EQ(s.readings[0].watts, 2.7 + 0.25 * (6.4 - 2.7));
}

TEST(Model, BoardFiguresComeTogetherAndInOrder) {
  ModelOptions one;
  one.board_idle_watts = 2.7;
  EXPECT_FALSE(validate(one).ok());
  ModelOptions reversed;
  reversed.board_idle_watts = 6.4;
  reversed.board_max_watts = 2.7;
  EXPECT_FALSE(validate(reversed).ok());
}

}  // namespace
}  // namespace wattprobe
