#include "agent/tick/attribution.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace wattprobe {
namespace {

NodeEnergy node(std::vector<std::pair<std::string, double>> domains, double seconds = 1.0) {
  NodeEnergy e;
  e.seconds = seconds;
  for (auto& [d, j] : domains) {
    DomainEnergy row;
    row.source = "rapl_powercap";
    row.domain = d;
    row.socket = 0;
    row.joules = j;
    row.watts = j / seconds;
    e.domains.push_back(row);
  }
  return e;
}

CpuTick cpu(std::vector<uint64_t> ns, uint64_t capacity, uint64_t unaccounted = 0) {
  CpuTick t;
  uint64_t busy = unaccounted;
  for (std::size_t i = 0; i < ns.size(); ++i) {
    t.workloads.push_back({{"w" + std::to_string(i), "service", "", "", ""}, ns[i], 0, 0});
    busy += ns[i];
  }
  t.unaccounted_ns = unaccounted;
  t.capacity_ns = capacity;
  t.idle_ns = capacity > busy ? capacity - busy : 0;
  return t;
}

double family_sum(const std::vector<Family>& fams, std::string_view name, std::string_view domain) {
  double s = 0;
  for (const auto& f : fams) {
    if (f.name != name) continue;
    for (const auto& series : f.series) {
      for (const auto& [k, v] : series.labels) {
        if (k == "domain" && v == domain) s += series.value;
      }
    }
  }
  return s;
}

// Invariant 1 over random ticks: idle + workloads + unattributed = measured, no negative share.
TEST(Attribution, PartsSumToMeasuredOverRandomTicks) {
  std::mt19937_64 rng(42);
  for (IdlePolicy policy : {IdlePolicy::separate, IdlePolicy::proportional, IdlePolicy::even}) {
    AttributionOptions opt;
    opt.idle_policy = policy;
    Attribution a(opt);
    double measured = 0;
    for (int t = 1; t <= 300; ++t) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(0, 40)(rng);
      if (t == 7) n = 1;
      std::vector<uint64_t> ns(n);
      for (auto& x : ns) x = t % 11 == 0 ? 0 : std::uniform_int_distribution<uint64_t>(0, 5e8)(rng);
      uint64_t unacc = t % 5 == 0 ? std::uniform_int_distribution<uint64_t>(0, 1e8)(rng) : 0;
      double joules = std::uniform_real_distribution<double>(0, 200)(rng);
      measured += joules;
      EnergyTick et = a.apply(node({{"package", joules}}), cpu(ns, 2'000'000'000, unacc), t * 1000);
      double parts = et.idle_joules + et.unattributed_joules;
      for (const auto& w : et.workloads) {
        EXPECT_GE(w.joules, 0.0);
        parts += w.joules;
      }
      EXPECT_NEAR(parts, joules, 1e-9 * std::max(joules, 1.0));
    }
    std::vector<Family> fams;
    a.append_families(fams);
    double total = family_sum(fams, "wattprobe_workload_energy_joules_total", "package") +
                   family_sum(fams, "wattprobe_node_idle_energy_joules_total", "package") +
                   family_sum(fams, "wattprobe_node_unattributed_energy_joules_total", "package");
    EXPECT_NEAR(total, measured, 1e-9 * measured);
    EXPECT_EQ(a.conservation_violations(), 0u);
  }
}

TEST(Attribution, TenThousandWorkloadsConserve) {
  AttributionOptions opt;
  opt.idle_watts = {{"package", 10}, {"dram", 1}};
  Attribution a(opt);
  std::vector<uint64_t> ns(10000);
  std::iota(ns.begin(), ns.end(), 1);
  EnergyTick et = a.apply(node({{"package", 80}, {"dram", 7}}), cpu(ns, 4'000'000'000), 1000);
  double sum = et.idle_joules + et.unattributed_joules;
  for (const auto& w : et.workloads) sum += w.joules;
  EXPECT_NEAR(sum, 87, 87e-9);
  ASSERT_EQ(et.workloads.size(), 10000u);
  // Shares follow CPU time: workload 9999 ran 10000 ns, workload 0 ran 1 ns.
  EXPECT_NEAR(et.workloads[9999].joules / et.workloads[0].joules, 10000.0, 1e-6);
}

TEST(Attribution, DynamicEnergySplitsByCpuTime) {
  AttributionOptions opt;
  opt.idle_watts["package"] = 20;
  Attribution a(opt);
  // 20 W idle override, 80 J measured in 1 s: 60 J dynamic split 3:1.
  EnergyTick et =
      a.apply(node({{"package", 80}}), cpu({750'000'000, 250'000'000}, 2'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(et.idle_joules, 20);
  EXPECT_DOUBLE_EQ(et.workloads[0].joules, 45);
  EXPECT_DOUBLE_EQ(et.workloads[1].joules, 15);
  EXPECT_DOUBLE_EQ(et.unattributed_joules, 0);
}

TEST(Attribution, IdleNeverExceedsMeasured) {
  AttributionOptions opt;
  opt.idle_watts["package"] = 50;
  Attribution a(opt);
  EnergyTick et = a.apply(node({{"package", 10}}), cpu({1000}, 1'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(et.idle_joules, 10);
  EXPECT_DOUBLE_EQ(et.workloads[0].joules, 0);
}

TEST(Attribution, LostRecordsBecomeUnattributed) {
  AttributionOptions opt;
  opt.idle_watts["package"] = 0;
  Attribution a(opt);
  EnergyTick et =
      a.apply(node({{"package", 100}}), cpu({300, 100}, 1000, /*unaccounted=*/100), 1000);
  EXPECT_DOUBLE_EQ(et.unattributed_joules, 20);
  EXPECT_DOUBLE_EQ(et.workloads[0].joules, 60);
}

TEST(Attribution, ZeroCpuTickLeavesDynamicUnattributed) {
  AttributionOptions opt;
  opt.idle_watts["package"] = 5;
  Attribution a(opt);
  EnergyTick et = a.apply(node({{"package", 12}}), cpu({}, 1'000'000'000), 1000);
  EXPECT_DOUBLE_EQ(et.idle_joules, 5);
  EXPECT_DOUBLE_EQ(et.unattributed_joules, 7);
}

TEST(Attribution, IdlePoliciesBehaveAsDocumented) {
  auto run = [](IdlePolicy p) {
    AttributionOptions opt;
    opt.idle_policy = p;
    opt.idle_watts["package"] = 20;
    Attribution a(opt);
    return a.apply(node({{"package", 60}}), cpu({300, 100}, 1000), 1000);
  };
  EnergyTick sep = run(IdlePolicy::separate);
  EXPECT_DOUBLE_EQ(sep.idle_joules, 20);
  EXPECT_DOUBLE_EQ(sep.workloads[0].joules, 30);
  EnergyTick prop = run(IdlePolicy::proportional);
  EXPECT_DOUBLE_EQ(prop.idle_joules, 0);
  EXPECT_DOUBLE_EQ(prop.workloads[0].joules, 45);
  EXPECT_DOUBLE_EQ(prop.workloads[1].joules, 15);
  EnergyTick even = run(IdlePolicy::even);
  EXPECT_DOUBLE_EQ(even.idle_joules, 0);
  EXPECT_DOUBLE_EQ(even.workloads[0].joules, 40);
  EXPECT_DOUBLE_EQ(even.workloads[1].joules, 20);
}

TEST(Attribution, LearnsIdleFromTheHostsOwnTicks) {
  Attribution a({});
  // A host whose package draws 20 W + 60 W × utilisation.
  std::mt19937 rng(1);
  for (int t = 1; t <= 200; ++t) {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    uint64_t busy = static_cast<uint64_t>(u * 1e9);
    a.apply(node({{"package", 20 + 60 * u}}), cpu({busy}, 1'000'000'000), t * 1000);
  }
  std::vector<Family> fams;
  a.append_families(fams);
  double idle_w = family_sum(fams, "wattprobe_node_idle_power_watts", "package");
  EXPECT_NEAR(idle_w, 20, 0.01);
}

TEST(Attribution, CarbonSumUsesNonOverlappingDomains) {
  Attribution a({});
  // package ⊃ core: only package + dram count toward the host's joules.
  EnergyTick et =
      a.apply(node({{"package", 50}, {"core", 30}, {"dram", 5}}), cpu({1000}, 1000), 1000);
  EXPECT_DOUBLE_EQ(et.measured_joules, 55);
}

TEST(Attribution, GoneWorkloadsLeaveTheSeriesAfterExpiry) {
  AttributionOptions opt;
  opt.workload_expiry = std::chrono::seconds(10);
  Attribution a(opt);
  a.apply(node({{"package", 10}}), cpu({100}, 1000), 1000);
  CpuTick other = cpu({}, 1000);
  other.workloads.push_back({{"other", "service", "", "", ""}, 100, 0, 0});
  a.apply(node({{"package", 10}}), other, 5000);
  EXPECT_EQ(a.workload_count(), 2u);
  a.apply(node({{"package", 10}}), other, 12000);
  EXPECT_EQ(a.workload_count(), 1u);
}

// Energy and power series by {workload, domain}, for comparing two attributions' exports.
std::map<std::pair<std::string, std::string>, std::pair<double, double>> workload_series(
    const Attribution& a) {
  std::vector<Family> fams;
  a.append_families(fams);
  std::map<std::pair<std::string, std::string>, std::pair<double, double>> out;
  auto key = [](const Series& s) {
    std::string w, d;
    for (const auto& [k, v] : s.labels) {
      if (k == "workload") w = v;
      if (k == "domain") d = v;
    }
    return std::pair(w, d);
  };
  for (const auto& f : fams) {
    for (const auto& s : f.series) {
      if (f.name == "wattprobe_workload_energy_joules_total") out[key(s)].first = s.value;
      if (f.name == "wattprobe_workload_power_watts") out[key(s)].second = s.value;
    }
  }
  return out;
}

std::pair<double, double> at(
    const std::map<std::pair<std::string, std::string>, std::pair<double, double>>& s,
    const std::string& workload, const std::string& domain) {
  auto it = s.find({workload, domain});
  return it == s.end() ? std::pair(-1.0, -1.0) : it->second;
}

// A workload that expires and comes back starts from zero, whichever slot it lands in.
TEST(Attribution, AWorkloadBackAfterExpiryStartsFromZero) {
  AttributionOptions opt;
  opt.workload_expiry = std::chrono::seconds(10);
  opt.idle_watts["package"] = 0;
  Attribution a(opt);
  a.apply(node({{"package", 10}}), cpu({100, 100}, 1000), 1000);  // w0, w1: 5 J each
  a.apply(node({{"package", 10}}), cpu({100}, 1000), 12'000);     // w0 runs; w1 expires
  EXPECT_EQ(a.workload_count(), 1u);
  CpuTick back = cpu({}, 1000);
  back.workloads.push_back({{"new", "service", "", "", ""}, 100, 0, 0});
  back.workloads.push_back({{"w1", "service", "", "", ""}, 100, 0, 0});
  a.apply(node({{"package", 4}}), back, 13'000);
  auto s = workload_series(a);
  EXPECT_DOUBLE_EQ(at(s, "w0", "package").first, 15);
  EXPECT_DOUBLE_EQ(at(s, "w0", "package").second, 0);  // did not run in the last tick
  EXPECT_DOUBLE_EQ(at(s, "w1", "package").first, 2);
  EXPECT_DOUBLE_EQ(at(s, "new", "package").first, 2);
  EXPECT_DOUBLE_EQ(at(s, "new", "package").second, 2);
}

// Sources and domains that appear while workloads are tracked keep every earlier total.
TEST(Attribution, DomainsAppearingLaterKeepEarlierTotals) {
  AttributionOptions opt;
  opt.idle_watts = {{"package", 0}, {"dram", 0}, {"core", 0}, {"uncore", 0}, {"psys", 0}};
  Attribution a(opt);
  a.apply(node({{"package", 10}}), cpu({300, 100}, 1000), 1000);
  a.apply(node({{"package", 10}, {"dram", 2}}), cpu({300, 100}, 1000), 2000);
  a.apply(node({{"package", 10}, {"dram", 2}, {"core", 4}, {"uncore", 1}, {"psys", 20}}),
          cpu({100, 300}, 1000), 3000);
  auto s = workload_series(a);
  EXPECT_DOUBLE_EQ(at(s, "w0", "package").first, 7.5 + 7.5 + 2.5);
  EXPECT_DOUBLE_EQ(at(s, "w1", "package").first, 2.5 + 2.5 + 7.5);
  EXPECT_DOUBLE_EQ(at(s, "w0", "dram").first, 1.5 + 0.5);
  EXPECT_DOUBLE_EQ(at(s, "w0", "psys").first, 5);
  EXPECT_DOUBLE_EQ(at(s, "w1", "psys").second, 15);
}

// What a checkpoint saves (totals) and restores continues the same series.
TEST(Attribution, RestoredTotalsContinueTheSameSeries) {
  AttributionOptions opt;
  opt.idle_watts = {{"package", 5}, {"dram", 1}};
  Attribution a(opt);
  a.apply(node({{"package", 30}, {"dram", 3}}), cpu({300, 100, 600}, 2000), 1000);
  a.apply(node({{"package", 20}, {"dram", 2}}), cpu({300, 100}, 2000), 2000);
  Attribution b(opt);
  b.restore(a.totals());
  EXPECT_EQ(b.workload_count(), 3u);
  auto before = workload_series(a), after = workload_series(b);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [k, v] : before) EXPECT_DOUBLE_EQ(after[k].first, v.first) << k.first;
  AttributionTotals ta = a.totals(), tb = b.totals();
  EXPECT_EQ(ta.idle_joules, tb.idle_joules);
  EXPECT_EQ(ta.unattributed_joules, tb.unattributed_joules);
  // Restored workloads keep their last-seen time: w2 last ran at 1000 ms and expires on time.
  AttributionOptions short_expiry = opt;
  short_expiry.workload_expiry = std::chrono::seconds(5);
  Attribution c(short_expiry);
  c.restore(a.totals());
  c.apply(node({{"package", 20}, {"dram", 2}}), cpu({300, 100}, 2000), 6500);
  EXPECT_EQ(c.workload_count(), 2u);
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

// A GPU is never split by CPU time: an nvml row goes by its device's per-process shares, a
// workload that used only the GPU still gets its part, and a gpu row without a per-process
// signal (hwmon) is unattributed.
TEST(Attribution, GpuRowsFollowTheirOwnSplitNeverCpuTime) {
  AttributionOptions o;
  o.idle_watts["gpu"] = 100;
  Attribution a(o);
  NodeEnergy e = node({{"package", 50}});
  DomainEnergy g;
  g.source = "nvml";
  g.domain = "gpu";
  g.socket = 0;
  g.joules = 500;
  g.watts = 500;
  e.domains.push_back(g);
  DomainEnergy h = g;
  h.source = "hwmon";
  h.socket = -1;
  h.joules = 200;
  h.watts = 200;
  e.domains.push_back(h);
  CpuTick c = cpu({3'000'000, 1'000'000}, 8'000'000);  // w0 3:1 w1 on the CPU
  GpuTick gpu;
  GpuDeviceTick dev;
  dev.source = "nvml";
  dev.device = 0;
  dev.method = "sampled";
  dev.utilisation = 0.8;
  dev.shares.push_back({{"w1", "service", "", "", ""}, 11, "b", 0.6});
  dev.shares.push_back({{"gpu-only", "service", "", "", ""}, 12, "c", 0.3});
  dev.unresolved = 0.1;
  gpu.devices.push_back(dev);
  // Twice: the first tick teaches nothing odd, the second is checked.
  a.apply(e, c, 1000, &gpu);
  EnergyTick t = a.apply(e, c, 2000, &gpu);
  EXPECT_EQ(a.conservation_violations(), 0u);
  std::map<std::string, double> host;
  for (const auto& w : t.workloads) host[w.id.workload] = w.joules;
  // nvml: 500 J − 100 J idle = 400 J dynamic: w1 60 %, gpu-only 30 %, 10 % unresolved; w0
  // (most CPU) gets none of it. hwmon: 100 J dynamic, all unattributed.
  EXPECT_NEAR(host["gpu-only"], 120, 1e-9);
  EXPECT_NEAR(host["w1"] - host["w0"] / 3, 240, 1e-9);
  // The GPU's part travels with the tick, so the ledger gets it without asking attribution.
  std::map<std::string, double> gpu_part;
  double gpu_sum = 0;
  for (const auto& w : t.workloads) {
    gpu_part[w.id.workload] = w.gpu_joules;
    gpu_sum += w.gpu_joules;
  }
  EXPECT_NEAR(gpu_part["gpu-only"], 120, 1e-9);
  EXPECT_NEAR(gpu_part["w1"], 240, 1e-9);
  EXPECT_EQ(gpu_part["w0"], 0);
  EXPECT_NEAR(t.unattributed_gpu_joules, 40 + 100, 1e-9);
  EXPECT_NEAR(gpu_sum + t.idle_gpu_joules + t.unattributed_gpu_joules, 500 + 200, 1e-9)
      << "idle + workloads + unattributed = measured holds for the GPU part alone";
  std::vector<Family> fams;
  a.append_families(fams);
  EXPECT_NEAR(family_sum(fams, "wattprobe_node_unattributed_energy_joules_total", "gpu"),
              2 * (40 + 100), 1e-9);
  EXPECT_NEAR(family_sum(fams, "wattprobe_workload_energy_joules_total", "gpu"), 2 * 360, 1e-9);
  bool labelled = false;
  for (const auto& f : fams) {
    if (f.name != "wattprobe_workload_gpu_energy_joules_total") continue;
    for (const auto& s : f.series) {
      for (const auto& [k, v] : s.labels) labelled = labelled || (k == "split" && v == "sampled");
    }
  }
  EXPECT_TRUE(labelled);
}

// nvml's GPU 0 and hwmon's GPU 0 are different GPUs: each row takes the split of its own
// source's device, and the per-GPU series say which source they came from.
TEST(Attribution, GpusOfTwoSourcesWithTheSameIndexAreSplitApart) {
  AttributionOptions o;
  o.idle_watts["gpu"] = 0;
  Attribution a(o);
  NodeEnergy e = node({{"package", 50}});
  DomainEnergy g;
  g.source = "nvml";
  g.domain = "gpu";
  g.socket = 0;
  g.joules = 300;
  g.watts = 300;
  e.domains.push_back(g);
  DomainEnergy h = g;
  h.source = "hwmon";
  h.joules = 100;
  h.watts = 100;
  e.domains.push_back(h);
  CpuTick c = cpu({3'000'000, 1'000'000}, 8'000'000);
  GpuTick gpu;
  GpuDeviceTick nv;
  nv.source = "nvml";
  nv.device = 0;
  nv.method = "exclusive";
  nv.shares.push_back({{"trainer", "service", "", "", ""}, 11, "python3", 1.0});
  gpu.devices.push_back(nv);
  GpuDeviceTick drm;
  drm.source = "hwmon";
  drm.device = 0;
  drm.method = "busy_time";
  drm.shares.push_back({{"render", "service", "", "", ""}, 21, "blender", 0.75});
  drm.shares.push_back({{"trainer", "service", "", "", ""}, 11, "python3", 0.25});
  gpu.devices.push_back(drm);
  EnergyTick t = a.apply(e, c, 1000, &gpu);
  EXPECT_EQ(a.conservation_violations(), 0u);
  std::map<std::string, double> gpu_part;
  for (const auto& w : t.workloads) gpu_part[w.id.workload] = w.gpu_joules;
  EXPECT_NEAR(gpu_part["trainer"], 300 + 25, 1e-9);
  EXPECT_NEAR(gpu_part["render"], 75, 1e-9);
  EXPECT_EQ(gpu_part["w0"], 0);
  std::vector<Family> fams;
  a.append_families(fams);
  std::map<std::string, double> by;  // "workload source split" → joules
  for (const auto& f : fams) {
    if (f.name != "wattprobe_workload_gpu_energy_joules_total") continue;
    for (const auto& s : f.series) {
      std::map<std::string, std::string> l(s.labels.begin(), s.labels.end());
      by[l["workload"] + " " + l["source"] + " " + l["device"] + " " + l["split"]] += s.value;
    }
  }
  EXPECT_NEAR(by["trainer nvml 0 exclusive"], 300, 1e-9);
  EXPECT_NEAR(by["trainer hwmon 0 busy_time"], 25, 1e-9);
  EXPECT_NEAR(by["render hwmon 0 busy_time"], 75, 1e-9);
  EXPECT_EQ(by.size(), 3u);
}

}  // namespace
}  // namespace wattprobe
