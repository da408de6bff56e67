// choose_sources, the one place that decides what `run` measures with: `auto`'s rules (one path
// per family, the model estimate only where no measured source covers the CPU), which sources
// stand by for a counter that stalls, and the start-up stall check, on trees written like the
// kernel's.

#include "collectors/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "collectors/gpu/gpu_split_source.h"
#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::PowercapDriver;
using testing::SysfsWriter;
using testing::TempTree;

SourceSettings settings_on(const TempTree& tree) {
  SourceSettings s;
  s.paths = tree.paths();
  s.paths.procfs_root = "/";  // the model reads the real host's CPU time; nothing else does
  s.nvml_library = tree.root() / "no-libnvidia-ml.so.1";
  return s;
}

std::vector<std::string> names(const std::vector<std::unique_ptr<EnergySource>>& sources) {
  std::vector<std::string> out;
  for (const auto& s : sources) out.emplace_back(s->name());
  return out;
}

const SourceStatus& status(const SourceChoice& c, std::string_view name) {
  for (const SourceStatus& st : c.status) {
    if (st.name == name) return st;
  }
  throw std::runtime_error("no status for " + std::string(name));
}

/// A window in which the CPUs were busy and the driver advanced the counters it drives.
StallCheckWindow busy_window(PowercapDriver& driver) {
  return [&driver] {
    driver.advance(0.2);
    return StallEvidence{0.2, 1.0};
  };
}

TEST(Registry, TheTableIsThePriorityAndEveryNameIsFound) {
  EXPECT_EQ(source_names().rfind("rapl_powercap", 0), 0u) << source_names();
  for (const SourceEntry& e : source_registry()) {
    ASSERT_NE(find_source(e.name), nullptr) << e.name;
    EXPECT_EQ(find_source(e.name)->name, e.name);
  }
  EXPECT_EQ(find_source("no_such_source"), nullptr);
}

TEST(Registry, AutoTakesPowercapAndKeepsTheModelStandingBy) {
  TempTree tree;
  PowercapDriver driver(SysfsWriter(tree), testing::two_socket_with_dram());
  driver.set_domain_watts("package", 30);
  driver.set_domain_watts("dram", 5);
  SourceChoice c = choose_sources({}, settings_on(tree), busy_window(driver));
  EXPECT_EQ(names(c.chosen), std::vector<std::string>{"rapl_powercap"});
  EXPECT_TRUE(c.measured);
  EXPECT_FALSE(c.estimated_cpu);
  EXPECT_TRUE(status(c, "rapl_powercap").chosen);
  const SourceStatus& model = status(c, "model");
  EXPECT_FALSE(model.chosen);
  EXPECT_TRUE(model.standby) << model.why;
  EXPECT_NE(std::find(names(c.standby).begin(), names(c.standby).end(), "model"),
            names(c.standby).end());
  EXPECT_TRUE(c.stalled.empty());
}

TEST(Registry, WithNothingMeasuredAutoChoosesTheEstimateAndSaysSo) {
  TempTree tree;
  SourceChoice c = choose_sources({}, settings_on(tree), [] { return StallEvidence{0.2, 1.0}; });
  EXPECT_EQ(names(c.chosen), std::vector<std::string>{"model"});
  EXPECT_FALSE(c.measured);
  EXPECT_TRUE(c.estimated_cpu);
  EXPECT_NE(status(c, "model").why.find("no measured source"), std::string::npos)
      << status(c, "model").why;
  // Nothing measured can stall, so nothing stands by.
  EXPECT_TRUE(c.standby.empty());
  EXPECT_FALSE(status(c, "rapl_powercap").availability.available);
}

TEST(Registry, ACounterThatDoesNotMoveWhileTheCpusWorkIsStalledAndTheModelStandsIn) {
  TempTree tree;
  PowercapDriver driver(SysfsWriter(tree), testing::one_socket());
  // The window is busy, but nothing advances the tree: a hypervisor's frozen RAPL.
  SourceChoice c = choose_sources({}, settings_on(tree), [] { return StallEvidence{0.2, 1.0}; });
  const SourceStatus& rapl = status(c, "rapl_powercap");
  EXPECT_TRUE(rapl.stalled);
  EXPECT_FALSE(rapl.chosen);
  EXPECT_NE(rapl.availability.reason.find("stalled"), std::string::npos)
      << rapl.availability.reason;
  EXPECT_FALSE(rapl.availability.remedy.empty());
  EXPECT_EQ(names(c.chosen), std::vector<std::string>{"model"});
  EXPECT_TRUE(c.estimated_cpu);
}

TEST(Registry, AnIdleWindowProvesNothingSoAStillCounterIsNotStalled) {
  TempTree tree;
  PowercapDriver driver(SysfsWriter(tree), testing::one_socket());
  SourceChoice c = choose_sources({}, settings_on(tree), [] { return StallEvidence{0.2, 0.0}; });
  EXPECT_FALSE(status(c, "rapl_powercap").stalled);
  EXPECT_EQ(names(c.chosen), std::vector<std::string>{"rapl_powercap"});
}

TEST(Registry, ARequestedSourceThatIsMissingIsListedWithItsReasonAndNotReplaced) {
  TempTree tree;
  SourceChoice c = choose_sources({"rapl_powercap"}, settings_on(tree), [] {
    return StallEvidence{0.2, 1.0};
  });
  const SourceStatus& rapl = status(c, "rapl_powercap");
  EXPECT_TRUE(rapl.requested);
  EXPECT_FALSE(rapl.chosen);
  EXPECT_FALSE(rapl.availability.reason.empty());
  // Named sources are what the user asked for: no estimate is slipped in beside them.
  EXPECT_TRUE(c.chosen.empty());
  EXPECT_FALSE(status(c, "model").requested);
  EXPECT_EQ(status(c, "model").why, "not in --sources");
}

TEST(Registry, OnlySourcesThatReadGpusHaveASplit) {
  TempTree tree;
  PowercapDriver driver(SysfsWriter(tree), testing::one_socket());
  driver.set_domain_watts("package", 20);
  SourceChoice c = choose_sources({}, settings_on(tree), busy_window(driver));
  ASSERT_FALSE(c.chosen.empty());
  for (const auto& s : c.chosen) EXPECT_EQ(make_gpu_split(*s, tree.paths()), nullptr) << s->name();
  EXPECT_NE(find_source("nvml")->make_gpu_split, nullptr);
  EXPECT_NE(find_source("hwmon")->make_gpu_split, nullptr);
}

}  // namespace
}  // namespace wattprobe
