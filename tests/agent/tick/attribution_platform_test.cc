// The wall's split (issue 26): with a platform meter and components inside it, each workload's
// platform energy is its components plus a share of the rest.
#include <gtest/gtest.h>

#include <random>

#include "agent/tick/attribution.h"

namespace wattprobe {
namespace {

NodeEnergy node(std::vector<std::pair<std::string, double>> domains) {
  NodeEnergy e;
  e.seconds = 1;
  for (auto& [d, j] : domains) {
    DomainEnergy row;
    row.source = d == "platform" ? "redfish" : "rapl_powercap";
    row.domain = d;
    row.socket = d == "platform" ? -1 : 0;
    row.joules = j;
    row.watts = j;
    e.domains.push_back(row);
  }
  return e;
}

CpuTick cpu(std::vector<uint64_t> ns, uint64_t capacity) {
  CpuTick t;
  uint64_t busy = 0;
  for (std::size_t i = 0; i < ns.size(); ++i) {
    t.workloads.push_back({{"w" + std::to_string(i), "service", "", "", ""}, ns[i], 0, 0});
    busy += ns[i];
  }
  t.capacity_ns = capacity;
  t.idle_ns = capacity > busy ? capacity - busy : 0;
  return t;
}

double value(const std::vector<Family>& fams, std::string_view name, std::string_view workload = {},
             std::string_view domain = {}) {
  double s = 0;
  for (const auto& f : fams) {
    if (f.name != name) continue;
    for (const auto& series : f.series) {
      bool match = true;
      for (const auto& [k, v] : series.labels) {
        if (k == "workload" && !workload.empty() && v != workload) match = false;
        if (k == "domain" && !domain.empty() && v != domain) match = false;
      }
      if (match) s += series.value;
    }
  }
  return s;
}

AttributionOptions idle_known() {
  AttributionOptions o;
  o.idle_watts = {{"package", 20}, {"dram", 4}, {"platform", 30}};
  return o;
}

TEST(AttributionPlatform, TheRestSplitsByDynamicComponentEnergy) {
  Attribution a(idle_known());
  EnergyTick t = a.apply(node({{"package", 80}, {"dram", 20}, {"platform", 200}}),
                         cpu({750'000'000, 250'000'000}, 2'000'000'000), 1000);
  // Components 100 J: package 60 J and dram 16 J dynamic, 3:1 → 57 and 19 J. The rest 100 J:
  // 30 J idle, 70 J split 57:19.
  ASSERT_EQ(t.workloads.size(), 2u);
  EXPECT_DOUBLE_EQ(t.workloads[0].joules, 57 + 52.5);
  EXPECT_DOUBLE_EQ(t.workloads[1].joules, 19 + 17.5);
  EXPECT_DOUBLE_EQ(t.idle_joules, 20 + 4 + 30);
  EXPECT_DOUBLE_EQ(t.measured_joules, 200);
  std::vector<Family> f;
  a.append_families(f);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_workload_energy_joules_total", "w0", "platform"), 109.5);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_workload_host_energy_joules_total", "w0"), 109.5);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_workload_host_energy_joules_total", "w1"), 36.5);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_node_platform_rest_watts"), 100);
  EXPECT_EQ(a.conservation_violations(), 0u);
}

TEST(AttributionPlatform, AWallBelowItsComponentsCountsTheShortfall) {
  Attribution a(idle_known());
  EnergyTick t = a.apply(node({{"package", 80}, {"dram", 20}, {"platform", 90}}),
                         cpu({750'000'000, 250'000'000}, 2'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(t.measured_joules, 100);
  EXPECT_DOUBLE_EQ(t.workloads[0].joules, 57);
  EXPECT_DOUBLE_EQ(t.workloads[1].joules, 19);
  std::vector<Family> f;
  a.append_families(f);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_node_platform_shortfall_joules_total"), 10);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_node_platform_rest_watts"), 0);
  EXPECT_EQ(a.conservation_violations(), 0u);
}

TEST(AttributionPlatform, TheNodesHostFigureIsTheWallOrItsComponentsNeverBoth) {
  Attribution a(idle_known());
  // A tick at the wall (200 J), then one where the wall read below its components (90 < 100).
  a.apply(node({{"package", 80}, {"dram", 20}, {"platform", 200}}),
          cpu({750'000'000, 250'000'000}, 2'000'000'000), 1000);
  EnergyTick t = a.apply(node({{"package", 80}, {"dram", 20}, {"platform", 90}}),
                         cpu({750'000'000, 250'000'000}, 2'000'000'000), 2000);
  std::vector<Family> f;
  a.append_families(f);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_node_host_energy_joules_total"), 200 + 100);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_node_host_power_watts"), 100);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_workload_host_power_watts", "w0"), t.workloads[0].joules);
  EXPECT_DOUBLE_EQ(value(f, "wattprobe_workload_host_power_watts", "w1"), 19);
  for (const Family& family : f) {
    if (family.name != "wattprobe_node_host_power_watts") continue;
    ASSERT_EQ(family.series.size(), 1u);
    EXPECT_EQ(family.series[0].labels.get(), (Labels{{"basis", "platform"}, {"measured", "true"}}));
  }
  // The node's figure is what its parts add up to: idle + workloads + unattributed.
  double parts = value(f, "wattprobe_node_idle_energy_joules_total", "", "platform") +
                 value(f, "wattprobe_node_unattributed_energy_joules_total", "", "platform") +
                 value(f, "wattprobe_workload_host_energy_joules_total");
  EXPECT_NEAR(parts, 300, 1e-9);

  // Restored from a checkpoint, the node's total continues.
  Attribution b(idle_known());
  b.restore(a.totals());
  b.apply(node({{"package", 30}, {"dram", 5}}), cpu({500'000'000}, 2'000'000'000), 3000);
  std::vector<Family> g;
  b.append_families(g);
  EXPECT_DOUBLE_EQ(value(g, "wattprobe_node_host_energy_joules_total"), 300 + 35);
  for (const Family& family : g) {
    if (family.name == "wattprobe_node_host_power_watts") {
      EXPECT_EQ(family.series[0].labels.get(),
                (Labels{{"basis", "components"}, {"measured", "true"}}));
    }
  }
}

TEST(AttributionPlatform, TheGpuPartOfTheHostFigureStaysWithAWall) {
  AttributionOptions options = idle_known();
  options.process_metrics_top = 5;
  Attribution a(options);
  NodeEnergy e = node({{"package", 40}, {"platform", 300}});
  DomainEnergy g;
  g.source = "nvml";
  g.domain = "gpu";
  g.socket = 0;
  g.joules = g.watts = 100;
  e.domains.push_back(g);
  GpuTick gpu;
  GpuDeviceTick dev;
  dev.source = "nvml";
  dev.device = 0;
  dev.method = "exclusive";
  dev.shares.push_back({{"w0", "service", "", "", ""}, 1, "train", 1.0});
  gpu.devices.push_back(dev);
  EnergyTick t = a.apply(e, cpu({500'000'000}, 2'000'000'000), 1000, &gpu);
  ASSERT_EQ(t.workloads.size(), 1u);
  // The GPU has no idle figure here: all 100 J are w0's, inside its platform share.
  EXPECT_DOUBLE_EQ(t.workloads[0].gpu_joules, 100);
  EXPECT_GE(t.workloads[0].joules, 100 + 20);
  EXPECT_DOUBLE_EQ(t.measured_joules, 300);
  EXPECT_EQ(a.conservation_violations(), 0u);
  // The GPU process has its GPU energy, as it has without a wall.
  std::vector<Family> f;
  a.append_families(f);
  double train = 0;
  for (const Family& family : f) {
    if (family.name != "wattprobe_process_energy_joules_total") continue;
    for (const Series& series : family.series)
      for (const auto& [k, v] : series.labels)
        if (k == "comm" && v == "train") train += series.value;
  }
  EXPECT_DOUBLE_EQ(train, 100);
}

TEST(AttributionPlatform, ATickWithoutWorkloadEnergyGivesTheRestToIdle) {
  Attribution a(idle_known());
  EnergyTick t = a.apply(node({{"package", 20}, {"platform", 150}}), cpu({}, 2'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(t.idle_joules, 150);
  EXPECT_DOUBLE_EQ(t.unattributed_joules, 0);
}

TEST(AttributionPlatform, ProportionalIdleGoesByCpuTime) {
  AttributionOptions o = idle_known();
  o.idle_policy = IdlePolicy::proportional;
  Attribution a(o);
  EnergyTick t = a.apply(node({{"package", 80}, {"dram", 20}, {"platform", 200}}),
                         cpu({750'000'000, 250'000'000}, 2'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(t.idle_joules, 0);
  EXPECT_NEAR(t.workloads[0].joules + t.workloads[1].joules, 200, 1e-9);
  EXPECT_NEAR(t.workloads[0].joules, 0.75 * 54 + 57 + 52.5, 1e-9);
}

TEST(AttributionPlatform, NeverBelowComponentsAndConservedOverRandomTicks) {
  std::mt19937 rng(26);
  std::uniform_real_distribution<double> j(0, 300);
  std::uniform_int_distribution<uint64_t> ns(0, 900'000'000);
  for (IdlePolicy p : {IdlePolicy::separate, IdlePolicy::proportional, IdlePolicy::even}) {
    AttributionOptions o;
    o.idle_policy = p;
    Attribution a(o);
    for (int k = 0; k < 300; ++k) {
      double pkg = j(rng), dram = j(rng) / 5, wall = j(rng) * 2;
      EnergyTick t = a.apply(node({{"package", pkg}, {"dram", dram}, {"platform", wall}}),
                             cpu({ns(rng), ns(rng), ns(rng)}, 4'000'000'000), 1000 + k * 1000);
      double parts = t.idle_joules + t.unattributed_joules;
      for (const auto& w : t.workloads) parts += w.joules;
      ASSERT_NEAR(parts, std::max(wall, pkg + dram), 1e-9 * std::max(1.0, wall));
    }
    std::vector<Family> f;
    a.append_families(f);
    for (std::string w : {"w0", "w1", "w2"}) {
      double components = value(f, "wattprobe_workload_energy_joules_total", w, "package") +
                          value(f, "wattprobe_workload_energy_joules_total", w, "dram");
      EXPECT_GE(value(f, "wattprobe_workload_energy_joules_total", w, "platform"),
                components - 1e-9);
    }
    EXPECT_EQ(a.conservation_violations(), 0u);
  }
}

}  // namespace
}  // namespace wattprobe
