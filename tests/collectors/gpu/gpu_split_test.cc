// The per-process GPU split on the real H200 traces (tests/data/nvml): each phase's workers'
// shares of the dynamic energy, against the truth the traces carry (counted matmuls, or busy
// seconds), and the synthetic in-step trace. These figures are the ones README "GPU energy per
// process" publishes.

#include "collectors/gpu/gpu_split.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

namespace wattprobe {
namespace {

struct Trace {
  nlohmann::json header;
  std::vector<nlohmann::json> records;
};

Trace load(const std::string& name) {
  Trace t;
  std::ifstream in(std::string(WATTPROBE_TEST_DATA) + "/nvml/" + name);
  EXPECT_TRUE(in) << name;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    if (t.header.is_null()) {
      t.header = j;
    } else {
      t.records.push_back(j);
    }
  }
  return t;
}

GpuActivity activity_of(const nlohmann::json& r) {
  GpuActivity a;
  a.index = 0;
  a.readable = true;
  a.utilisation = r["util_gpu"].get<double>() / 100;
  for (auto& p : r["running"]) a.running.push_back(p.get<uint32_t>());
  for (auto& s : r["samples"])
    a.samples.push_back({s[0].get<uint32_t>(), s[1].get<uint64_t>(), s[2].get<unsigned>()});
  return a;
}

struct PhaseResult {
  std::map<std::string, double> estimate, truth;  // worker label → % of the workers' energy
  double worst = 0;                               // percentage points
  std::string method;
  int ticks = 0, uncertain = 0;  // ticks of the phase, and those labelled uncertain
};

// Replays one phase as the agent would at 1 s ticks: each tick's energy counter delta is split
// by that tick's shares (idle is the same for every process, so the shares of the whole delta
// are the shares of its dynamic part).
PhaseResult replay_phase(const Trace& t, const std::string& phase, double tick_s = 1.0) {
  auto span = t.header["truth"]["phases"][phase];
  double from = span[0].get<double>(), to = span[1].get<double>();
  std::map<uint32_t, std::string> label;
  for (auto& [pid, l] : t.header["workers"].items()) label[std::stoul(pid)] = l.get<std::string>();
  GpuSplitter splitter;
  PhaseResult out;
  std::map<std::string, double> joules;
  std::map<std::string, int> methods;
  const nlohmann::json* first = nullptr;
  const nlohmann::json* last = nullptr;
  GpuActivity acc;
  double tick_start = -1;
  uint64_t tick_energy = 0;
  for (const auto& r : t.records) {
    double time = r["t"].get<double>();
    if (time < from - 10) continue;  // the splitter's window fills before the phase, as live
    if (time >= to) break;
    GpuActivity a = activity_of(r);
    acc.running = a.running;
    acc.utilisation = a.utilisation;
    acc.readable = true;
    acc.samples.insert(acc.samples.end(), a.samples.begin(), a.samples.end());
    if (tick_start < 0) {
      tick_start = time;
      tick_energy = r["energy_mj"].get<uint64_t>();
    }
    if (time - tick_start < tick_s - 0.05) continue;
    GpuSplitResult split = splitter.split(acc, time);
    uint64_t e = r["energy_mj"].get<uint64_t>();
    if (time >= from) {
      if (!first) first = &r;
      last = &r;
      ++methods[split.method];
      ++out.ticks;
      if (split.confidence == "uncertain") ++out.uncertain;
      for (const GpuPidShare& s : split.shares) {
        if (label.count(s.pid))
          joules[label[s.pid]] += s.share * static_cast<double>(e - tick_energy);
      }
    }
    acc.samples.clear();
    tick_start = time;
    tick_energy = e;
  }
  EXPECT_TRUE(first && last);
  std::map<std::string, double> truth;
  if (t.header["truth"].contains("busy_seconds")) {
    for (auto& [pid, s] : t.header["truth"]["busy_seconds"].items())
      truth[label[std::stoul(pid)]] = s.get<double>();
  } else {
    for (auto& [w, n] : (*last)["matmuls"].items())
      truth[w] = n.get<double>() - (*first)["matmuls"][w].get<double>();
  }
  double tsum = 0, esum = 0;
  for (auto& [w, v] : truth) tsum += v;
  for (auto& [w, v] : truth) esum += joules[w];
  for (auto& [w, v] : truth) {
    out.truth[w] = 100 * v / tsum;
    out.estimate[w] = esum > 0 ? 100 * joules[w] / esum : 0;
    out.worst = std::max(out.worst, std::fabs(out.estimate[w] - out.truth[w]));
  }
  for (auto& [m, n] : methods) out.method += (out.method.empty() ? "" : ",") + m;
  return out;
}

void report(const std::string& trace, const std::string& phase, const PhaseResult& r) {
  std::printf("%-36s %-20s split=%-18s uncertain %2d/%2d ticks, worst %5.1f pts:", trace.c_str(),
              phase.c_str(), r.method.c_str(), r.uncertain, r.ticks, r.worst);
  for (auto& [w, v] : r.truth)
    std::printf("  %s %.1f%% (truth %.1f%%)", w.c_str(), r.estimate.at(w), v);
  std::printf("\n");
}

// The bound the README publishes: every busy phase of the recorded traces within 7 points of the
// counted work, at the agent's default 1 s tick and at 500 ms.
constexpr double kWorstPoints = 7.0;

TEST(GpuSplit, PhasedTraceEveryPhaseWithinBoundAndUncertain) {
  // A is named in every sample while B holds a context: the in-step pattern, so the split is the
  // remainder's best estimate and says it is uncertain.
  Trace t = load("h200-phased-75-25.jsonl");
  for (double tick : {1.0, 0.5}) {
    for (const char* phase : {"S1_disjoint", "S2_overlap"}) {
      PhaseResult r = replay_phase(t, phase, tick);
      report("h200-phased-75-25", phase, r);
      EXPECT_LE(r.worst, kWorstPoints) << phase << " tick " << tick;
      // The first ticks of a phase still see the idle before it.
      EXPECT_GE(r.uncertain, r.ticks * 9 / 10) << phase;
    }
  }
}

TEST(GpuSplit, RandomPeriodsTraceEveryPhaseWithinBoundAndConfident) {
  Trace t = load("h200-random-periods-50-30-20.jsonl");
  for (double tick : {1.0, 0.5}) {
    for (const char* phase : {"S1_random_50_30_20", "S2_random_75_25"}) {
      PhaseResult r = replay_phase(t, phase, tick);
      report("h200-random-periods-50-30-20", phase, r);
      EXPECT_LE(r.worst, kWorstPoints) << phase << " tick " << tick;
      // The first tick or two of a phase still see the idle before it.
      EXPECT_LE(r.uncertain, 2) << phase;
    }
  }
  PhaseResult s1 = replay_phase(t, "S1_random_50_30_20");
  EXPECT_GT(s1.estimate["A"], s1.estimate["B"]);
  EXPECT_GT(s1.estimate["B"], s1.estimate["C"]);
}

TEST(GpuSplit, InStepThreeWorkersAreUncertain) {
  // tests/support/nvml_traces/make_instep_trace.py: every sample names one worker; no split from
  // the samples and utilisation can be right, and the label must say so.
  Trace t = load("synthetic-instep-50-30-20.jsonl");
  for (const char* phase : {"S1_instep_named_B", "S2_instep_named_A"}) {
    PhaseResult r = replay_phase(t, phase, 0.5);
    report("synthetic-instep-50-30-20", phase, r);
    EXPECT_GE(r.uncertain, r.ticks - 2) << phase;
  }
}

TEST(GpuSplit, TwoProcsTraceAgainstBusySeconds) {
  // Busy seconds are wall time in each worker's window, not GPU time: the windows start together
  // and contend, so the minority's busy seconds overstate its share of the work. Looser evidence
  // than the counted matmuls: reported (README), and held to a looser bound.
  Trace t = load("h200-two-procs-75-25.jsonl");
  PhaseResult r = replay_phase(t, "load");
  report("h200-two-procs-75-25", "load", r);
  EXPECT_LE(r.worst, 15.0);
}

TEST(GpuSplit, OneNamedWithIdleOthersIsConfident) {
  // The named process's samples explain the device's utilisation: the others hold idle contexts.
  GpuSplitter s;
  GpuSplitResult r;
  for (int i = 0; i < 20; ++i) {
    GpuActivity a;
    a.readable = true;
    a.utilisation = 0.6;
    a.running = {1, 2};
    a.samples = {{1, static_cast<uint64_t>(i + 1), 61}};
    r = s.split(a, i * 0.5);
  }
  EXPECT_EQ(r.method, "sampled");
  EXPECT_EQ(r.confidence, "confident");
  EXPECT_DOUBLE_EQ(r.shares[0].share, 1.0);
}

TEST(GpuSplit, OneNamedWhileTheDeviceIsBusierIsAnUncertainRemainder) {
  GpuSplitter s;
  GpuSplitResult r;
  for (int i = 0; i < 20; ++i) {
    GpuActivity a;
    a.readable = true;
    a.utilisation = 0.8;
    a.running = {1, 2, 3};
    a.samples = {{2, static_cast<uint64_t>(i + 1), 56}};
    r = s.split(a, i * 0.5);
  }
  EXPECT_EQ(r.method, "remainder");
  EXPECT_EQ(r.confidence, "uncertain");
  EXPECT_FALSE(r.why.empty());
  std::map<uint32_t, double> share;
  for (auto& x : r.shares) share[x.pid] = x.share;
  EXPECT_NEAR(share[2], 0.70, 1e-9);  // 56 of 80 explained
  EXPECT_NEAR(share[1], 0.15, 1e-9);
  EXPECT_NEAR(share[3], 0.15, 1e-9);
}

TEST(GpuSplit, AccountingBusyTimeSplitsWhatTheSamplesCannot) {
  // Three processes started 4 s before the first read; every sample names pid 2, but accounting
  // mode says 2 was busy 30 % of its life, 1 50 % and 3 20 %.
  GpuSplitter s;
  GpuSplitResult r;
  const uint64_t start = 1'000'000'000'000;
  for (int i = 0; i < 24; ++i) {
    GpuActivity a;
    a.readable = true;
    a.utilisation = 0.8;
    a.running = {1, 2, 3};
    a.samples = {{2, static_cast<uint64_t>(i + 1), 56}};
    a.accounting_read_us = start + 4'000'000 + static_cast<uint64_t>(i) * 500'000;
    a.accounting = {{1, 50, start}, {2, 30, start}, {3, 20, start}};
    r = s.split(a, i * 0.5);
  }
  EXPECT_EQ(r.method, "accounting");
  EXPECT_EQ(r.confidence, "confident") << r.why;
  std::map<uint32_t, double> share;
  for (auto& x : r.shares) share[x.pid] = x.share;
  EXPECT_NEAR(share[1], 0.5, 1e-9);
  EXPECT_NEAR(share[2], 0.3, 1e-9);
  EXPECT_NEAR(share[3], 0.2, 1e-9);
  // A process without an accounting record: back to the samples.
  GpuActivity b;
  b.readable = true;
  b.utilisation = 0.8;
  b.running = {1, 2, 3};
  b.accounting_read_us = start + 20'000'000;
  b.accounting = {{1, 50, start}, {2, 30, start}};
  EXPECT_NE(s.split(b, 13).method, "accounting");
}

TEST(GpuSplit, OneContextIsExclusiveAndExact) {
  GpuSplitter s;
  GpuActivity a;
  a.readable = true;
  a.running = {42};
  a.samples = {{7, 1, 90}};  // a sample of a process that has left does not matter
  GpuSplitResult r = s.split(a, 1.0);
  EXPECT_EQ(r.method, "exclusive");
  EXPECT_EQ(r.confidence, "confident");
  ASSERT_EQ(r.shares.size(), 1u);
  EXPECT_EQ(r.shares[0].pid, 42u);
  EXPECT_DOUBLE_EQ(r.shares[0].share, 1.0);
}

TEST(GpuSplit, NoSamplesIsEvenAndSaysSo) {
  GpuSplitter s;
  GpuActivity a;
  a.readable = true;
  a.running = {1, 2, 3};
  GpuSplitResult r = s.split(a, 1.0);
  EXPECT_EQ(r.method, "even");
  EXPECT_EQ(r.confidence, "uncertain");
  EXPECT_FALSE(r.why.empty());
  double sum = 0;
  for (auto& x : r.shares) sum += x.share;
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

TEST(GpuSplit, UnsplittableAndNobodyGoToNone) {
  GpuSplitter s;
  GpuActivity mig;
  mig.readable = true;
  mig.running = {1, 2};
  mig.unsplittable = "MIG mode is on";
  EXPECT_EQ(s.split(mig, 1).method, "none");
  EXPECT_EQ(s.split(mig, 1).why, "MIG mode is on");
  GpuActivity nobody;
  nobody.readable = true;
  EXPECT_EQ(s.split(nobody, 2).method, "none");
}

}  // namespace
}  // namespace wattprobe
