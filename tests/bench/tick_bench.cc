// Cost of the agent's per-tick work, for the closing-note figures (not asserted anywhere):
//   build/bench/tick_bench
// - one EnergyMeter tick over a powercap tree of 2 and of 64 zones (real files in a temp dir);
// - one attribution tick for N workloads, including building its families;
// - rendering /metrics for N workload series: the text a snapshot's first scrape renders
//   (prometheus_text.h), with its gzip, and the prometheus-cpp path it replaced, for comparison.
#include <benchmark/benchmark.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <memory>

#include "agent/tick/attribution.h"
#include "agent/tick/energy_meter.h"
#include "collectors/cpu/workload_table.h"
#include "collectors/energy/rapl_powercap.h"
#include "exporters/gzip_body.h"
#include "exporters/prometheus_pull.h"
#include "exporters/prometheus_text.h"
#include "tests/bench/bench_inputs.h"
#include "tests/support/fake_sysfs.h"
#include "tests/support/snapshot_collectable.h"
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

// The snapshot of N workloads' attribution: Arg(2000) is 10,009 series.
std::shared_ptr<Snapshot> attribution_snapshot(std::size_t workloads_n, std::size_t& series) {
  Attribution a({});
  a.apply(two_domains(), workloads(workloads_n), 1000);
  auto snap = std::make_shared<Snapshot>();
  a.append_families(snap->families);
  series = 0;
  for (const auto& f : snap->families) series += f.series.size();
  return snap;
}

// The cost of a snapshot's first scrape (the later ones are served from the cache).
void BM_RenderMetrics(benchmark::State& state) {
  std::size_t series = 0;
  auto snap = attribution_snapshot(static_cast<std::size_t>(state.range(0)), series);
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string out = render_prometheus_text(*snap);
    bytes = out.size();
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(std::to_string(series) + " series, " + std::to_string(bytes / 1024) + " KiB");
}
BENCHMARK(BM_RenderMetrics)->Arg(100)->Arg(2000)->Unit(benchmark::kMillisecond);

// The first gzip scrape of a snapshot: render and deflate at range(1) (kMetricsGzipLevel is
// what the agent uses; 6 is zlib's default, which prometheus-cpp used on every scrape).
void BM_RenderMetricsGzip(benchmark::State& state) {
  std::size_t series = 0;
  auto snap = attribution_snapshot(static_cast<std::size_t>(state.range(0)), series);
  const int level = static_cast<int>(state.range(1));
  std::size_t bytes = 0;
  for (auto _ : state) {
    DeflatedPiece piece = deflate_piece(render_prometheus_text(*snap), level, /*last=*/true);
    bytes = piece.bytes.size();
    benchmark::DoNotOptimize(piece);
  }
  state.SetLabel(std::to_string(series) + " series, level " + std::to_string(level) + ", " +
                 std::to_string(bytes / 1024) + " KiB");
}
BENCHMARK(BM_RenderMetricsGzip)
    ->Args({2000, kMetricsGzipLevel})
    ->Args({2000, 6})
    ->Unit(benchmark::kMillisecond);

// A later gzip scrape of the same snapshot: the cached page, and the few exposer_* lines that
// change on every scrape deflated on their own (about 1 KiB, as /metrics does).
void BM_ScrapeFromCache(benchmark::State& state) {
  std::size_t series = 0;
  SnapshotPtr snap = attribution_snapshot(static_cast<std::size_t>(state.range(0)), series);
  MetricsPageCache cache([snap] { return snap; });
  cache.page(true);
  const std::string lead(1024, 'x');
  for (auto _ : state) {
    MetricsPage page = cache.page(true);
    DeflatedPiece first = deflate_piece(lead, kMetricsGzipLevel, /*last=*/false);
    benchmark::DoNotOptimize(page);
    benchmark::DoNotOptimize(first);
  }
  state.SetLabel(std::to_string(series) + " series, " + std::to_string(cache.renders()) +
                 " render");
}
BENCHMARK(BM_ScrapeFromCache)->Arg(2000)->Unit(benchmark::kMicrosecond);

// What every scrape cost before: prometheus-cpp's Collect + TextSerializer, then (range(1) = 1)
// its handler's gzip at zlib's default level.
void BM_RenderMetricsPrometheusCpp(benchmark::State& state) {
  std::size_t series = 0;
  auto snap = attribution_snapshot(static_cast<std::size_t>(state.range(0)), series);
  prometheus::TextSerializer text;
  auto collectable = testing::make_snapshot_collectable([snap] { return SnapshotPtr(snap); });
  const bool gzip = state.range(1) != 0;
  for (auto _ : state) {
    std::string out = text.Serialize(collectable->Collect());
    if (gzip) {
      DeflatedPiece piece = deflate_piece(out, 6, /*last=*/true);
      benchmark::DoNotOptimize(piece);
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetLabel(std::to_string(series) + " series" + (gzip ? ", gzip level 6" : ""));
}
BENCHMARK(BM_RenderMetricsPrometheusCpp)
    ->Args({2000, 0})
    ->Args({2000, 1})
    ->Unit(benchmark::kMillisecond);

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
