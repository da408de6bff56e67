// Cost of a checkpoint, for the closing-note figures (not asserted anywhere):
//   build/bench/checkpoint_bench
// N Kubernetes pod workloads, each with package and dram joules, CPU seconds and carbon grams,
// as the running parts hold them after a tick:
// - capture + encode (what the sampling thread spends before the write);
// - capture + encode + atomic write with fsync of the file and the folder (a whole checkpoint);
// - read + decode + restore (start-up).
// The write goes to $TMPDIR (default /tmp): put it on the disk the state folder lives on, since
// on tmpfs an fsync costs nothing. The `bytes` counter is the file size.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iterator>

#include "agent/state/checkpoint.h"
#include "tests/bench/bench_inputs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using bench::two_domains;

CpuTick pods(std::size_t n) {
  CpuTick t;
  for (std::size_t i = 0; i < n; ++i) {
    std::string ns = "namespace-" + std::to_string(i % 50);
    std::string pod = "deployment-" + std::to_string(i) + "-7d9f8c6b5-x2k4q";
    t.workloads.push_back({{ns + "/" + pod + "/app", "pod", ns, pod, "app"}, 1000 + i, 0, 0});
  }
  t.capacity_ns = 64'000'000'000;
  t.idle_ns = 32'000'000'000;
  return t;
}

/// The running parts after a few ticks with `n` workloads.
struct Parts {
  explicit Parts(std::size_t n)
      : meter({}),
        attribution({}),
        carbon(host.paths(), {}, std::make_unique<StaticGridProvider>(475, "")) {
    meter.restore_total("rapl_powercap", "package", 0, 1e6);
    meter.restore_total("rapl_powercap", "dram", 0, 2e5);
    CpuTick cpu = pods(n);
    int64_t now = 1'700'000'000'000;
    for (int i = 0; i < 3; ++i) {
      now += 1000;
      carbon.on_tick(attribution.apply(two_domains(1e6), cpu, now));
    }
  }
  testing::TempTree host;
  EnergyMeter meter;
  Attribution attribution;
  Carbon carbon;
};

CheckpointState capture(const Parts& p) {
  CheckpointState s = capture_totals(p.meter, p.attribution, &p.carbon);
  s.host = {"0123456789abcdef0123456789abcdef", "bench"};
  s.written_ms = 1'700'000'100'000;
  return s;
}

void BM_CheckpointEncode(benchmark::State& state) {
  Parts parts(static_cast<std::size_t>(state.range(0)));
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string file = encode_checkpoint(capture(parts));
    bytes = file.size();
    benchmark::DoNotOptimize(file);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_CheckpointEncode)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

// With OTLP on, every total also carries its start time (format 2): what that adds.
void BM_CheckpointEncodeWithStartTimes(benchmark::State& state) {
  Parts parts(static_cast<std::size_t>(state.range(0)));
  CheckpointState s = capture(parts);
  int64_t start = 1'699'000'000'000;
  for (const Family& f : checkpoint_families(s))
    for (const Series& series : f.series)
      s.series_starts.push_back({f.name, series.labels, ++start});
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string file = encode_checkpoint(s);
    bytes = file.size();
    benchmark::DoNotOptimize(file);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.counters["starts"] = static_cast<double>(s.series_starts.size());
}
BENCHMARK(BM_CheckpointEncodeWithStartTimes)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond);

void BM_CheckpointWrite(benchmark::State& state) {
  Parts parts(static_cast<std::size_t>(state.range(0)));
  testing::TempTree dir;
  CheckpointStore store(dir.root(), {"0123456789abcdef0123456789abcdef", "bench"});
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string file = encode_checkpoint(capture(parts));
    bytes = file.size();
    if (!store.write(file)) state.SkipWithError("write failed");
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_CheckpointWrite)->Arg(100)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CheckpointLoadAndRestore(benchmark::State& state) {
  Parts parts(static_cast<std::size_t>(state.range(0)));
  testing::TempTree dir;
  HostIdentity self{"0123456789abcdef0123456789abcdef", "bench"};
  CheckpointStore store(dir.root(), self);
  if (!store.write(encode_checkpoint(capture(parts)))) state.SkipWithError("write failed");
  for (auto _ : state) {
    auto loaded = store.load();
    if (!loaded.state) state.SkipWithError("load failed");
    EnergyMeter meter({});
    Attribution attribution({});
    Carbon carbon(parts.host.paths(), {}, std::make_unique<StaticGridProvider>(475, ""));
    restore_totals(*loaded.state, meter, attribution, &carbon);
    benchmark::DoNotOptimize(attribution.workload_count());
  }
}
BENCHMARK(BM_CheckpointLoadAndRestore)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace wattprobe

BENCHMARK_MAIN();
