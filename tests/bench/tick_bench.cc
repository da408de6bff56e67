// Cost of the agent's per-tick work, for the closing-note figures (not asserted anywhere):
//   build/bench/tick_bench
// - one EnergyMeter tick over a powercap tree of 2 and of 64 zones (real files in a temp dir);
// - one attribution tick for N workloads, including building its families;
// - rendering /metrics (snapshot → prometheus-cpp text) for N workload series.
#include <benchmark/benchmark.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <memory>

#include "agent/tick/attribution.h"
#include "agent/tick/energy_meter.h"
#include "collectors/rapl_powercap.h"
#include "collectors/workload_table.h"
#include "exporters/prometheus_pull.h"
#include "tests/bench/bench_inputs.h"
#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using bench::two_domains;

void BM_PowercapTick(benchmark::State& state) {
  testing::TempTree tree;
  testing::PowercapScenario s;
  s.name = "bench";
  const int packages = static_cast<int>(state.range(0)) / 2;
  for (int p = 0; p < packages; ++p) {
    char key[32], sub[32];
    std::snprintf(key, sizeof key, "intel-rapl:%x", p);
    std::snprintf(sub, sizeof sub, "intel-rapl:%x:0", p);
    s.zones.push_back(
        {key, "package-" + std::to_string(p), 0, testing::kIntelMaxEnergyRangeUj, true});
    s.zones.push_back({sub, "dram", 0, testing::kIntelMaxEnergyRangeUj, true});
  }
  testing::write_powercap(testing::SysfsWriter(tree), s);
  std::vector<std::unique_ptr<EnergySource>> sources;
  sources.push_back(make_rapl_powercap_source(tree.paths()));
  sources.front()->probe();
  EnergyMeter meter(std::move(sources));
  for (auto _ : state) benchmark::DoNotOptimize(meter.tick(1.0));
  state.SetLabel(std::to_string(state.range(0)) + " zones");
}
BENCHMARK(BM_PowercapTick)->Arg(2)->Arg(64)->Unit(benchmark::kMicrosecond);

CpuTick workloads(std::size_t n) {
  CpuTick t;
  for (std::size_t i = 0; i < n; ++i) {
    t.workloads.push_back(
        {{"workload-" + std::to_string(i) + ".service", "service", "", "", ""}, 1000 + i, 0, 0});
  }
  t.capacity_ns = 2'000'000'000;
  t.idle_ns = 1'000'000'000;
  return t;
}

void BM_AttributionTick(benchmark::State& state) {
  Attribution a({});
  NodeEnergy e = two_domains();
  CpuTick cpu = workloads(static_cast<std::size_t>(state.range(0)));
  int64_t now = 1000;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(a.apply(e, cpu, now));
    std::vector<Family> fams;
    a.append_families(fams);
    benchmark::DoNotOptimize(fams);
  }
}
BENCHMARK(BM_AttributionTick)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

// The two halves of BM_AttributionTick: the split itself, and the exposition update (building
// the families a snapshot holds, and freeing them as the next snapshot replaces it).
void BM_AttributionApply(benchmark::State& state) {
  Attribution a({});
  NodeEnergy e = two_domains();
  CpuTick cpu = workloads(static_cast<std::size_t>(state.range(0)));
  int64_t now = 1000;
  for (auto _ : state) {
    now += 1000;
    benchmark::DoNotOptimize(a.apply(e, cpu, now));
  }
}
BENCHMARK(BM_AttributionApply)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_AttributionFamilies(benchmark::State& state) {
  Attribution a({});
  a.apply(two_domains(), workloads(static_cast<std::size_t>(state.range(0))), 1000);
  for (auto _ : state) {
    std::vector<Family> fams;
    a.append_families(fams);
    benchmark::DoNotOptimize(fams);
  }
}
BENCHMARK(BM_AttributionFamilies)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_RenderMetrics(benchmark::State& state) {
  Attribution a({});
  a.apply(two_domains(), workloads(static_cast<std::size_t>(state.range(0))), 1000);
  auto snap = std::make_shared<Snapshot>();
  a.append_families(snap->families);
  std::size_t series = 0;
  for (const auto& f : snap->families) series += f.series.size();
  prometheus::TextSerializer text;
  auto collectable = make_snapshot_collectable([snap] { return SnapshotPtr(snap); });
  for (auto _ : state) {
    std::string out = text.Serialize(collectable->Collect());
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(std::to_string(series) + " series");
}
BENCHMARK(BM_RenderMetrics)->Arg(100)->Arg(2000)->Unit(benchmark::kMillisecond);

// One drain's fold of 10,000 tasks into 500 workloads (goal: well under 5 ms).
void BM_WorkloadTableFold(benchmark::State& state) {
  WorkloadTable table(1000);
  std::vector<WorkloadId> ids;
  for (int i = 0; i < 500; ++i)
    ids.push_back({"svc-" + std::to_string(i) + ".service", "service", "", "", ""});
  for (auto _ : state) {
    for (int i = 0; i < state.range(0); ++i) {
      table.add(ids[static_cast<std::size_t>(i) % ids.size()], 1000);
    }
    CpuTick tick;
    table.finish(tick);
    benchmark::DoNotOptimize(tick.workloads.data());
  }
}
BENCHMARK(BM_WorkloadTableFold)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace wattprobe

BENCHMARK_MAIN();
