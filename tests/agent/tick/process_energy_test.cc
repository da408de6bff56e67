#include "agent/tick/process_energy.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>

#include "agent/tick/attribution.h"

namespace wattprobe {
namespace {

using std::chrono::minutes;

WorkloadCpu workload(std::string name, uint64_t cpu_ns) {
  return {{std::move(name), "service", "", "", ""}, cpu_ns, 0, 0};
}

ProcessCpu process(uint32_t pid, uint64_t start, std::string comm, std::size_t w, uint64_t ns) {
  return {pid, start, std::move(comm), w, ns};
}

const Family* find(const std::vector<Family>& fams, std::string_view name) {
  for (const auto& f : fams)
    if (f.name == name) return &f;
  return nullptr;
}

std::string label(const Series& s, std::string_view key) {
  for (const auto& [k, v] : s.labels)
    if (k == key) return v;
  return "<absent>";
}

DomainEnergy row(std::string domain, double joules) {
  DomainEnergy r;
  r.source = "rapl_powercap";
  r.domain = std::move(domain);
  r.socket = 0;
  r.joules = joules;
  r.watts = joules;
  return r;
}

// Each workload's processes together hold exactly the workload's joules of the tick, summed
// over package + dram (core lies inside package and must not count twice).
TEST(ProcessEnergy, ProcessesSumToTheirWorkloadsJoules) {
  AttributionOptions opt;
  opt.idle_watts = {{"package", 10}, {"dram", 1}};
  opt.process_metrics_top = 10;
  Attribution a(opt);
  std::mt19937_64 rng(7);
  std::map<std::string, double> workload_joules;
  for (int t = 1; t <= 50; ++t) {
    NodeEnergy e;
    e.seconds = 1;
    e.domains = {row("package", std::uniform_real_distribution<double>(10, 90)(rng)),
                 row("core", 5), row("dram", std::uniform_real_distribution<double>(1, 9)(rng))};
    CpuTick cpu;
    cpu.capacity_ns = 2'000'000'000;
    cpu.idle_ns = 500'000'000;
    cpu.unaccounted_ns = t % 3 == 0 ? 1'000'000 : 0;
    for (std::size_t w = 0; w < 3; ++w) {
      cpu.workloads.push_back(workload("w" + std::to_string(w), 0));
      for (uint32_t k = 0; k < 3; ++k) {
        uint64_t ns = std::uniform_int_distribution<uint64_t>(0, 100'000'000)(rng);
        cpu.processes.push_back(process(100 + 10 * w + k, 1, "p", w, ns));
        cpu.workloads[w].cpu_ns += ns;
      }
    }
    EnergyTick et = a.apply(e, cpu, t * 1000);
    for (const auto& w : et.workloads) workload_joules[w.id.workload] += w.joules;
  }
  std::map<std::string, double> process_joules;
  for (const auto& p : a.processes().top()) process_joules[p.workload] += p.joules;
  ASSERT_EQ(process_joules.size(), 3u);
  for (const auto& [w, j] : workload_joules) {
    EXPECT_GT(j, 0);
    EXPECT_NEAR(process_joules[w], j, 1e-9 * j) << w;
  }
}

TEST(ProcessEnergy, ExportsTheTopNLargestFirst) {
  ProcessEnergy p(3, minutes(5));
  CpuTick cpu;
  cpu.workloads = {workload("web.service", 1000)};
  const uint64_t ns[] = {100, 400, 50, 300, 150};
  for (uint32_t i = 0; i < 5; ++i)
    cpu.processes.push_back(process(10 + i, 1, "c" + std::to_string(i), 0, ns[i]));
  const double joules[] = {100.0};
  p.add(cpu, joules, 1000);

  std::vector<Family> fams;
  p.append_families(fams);
  const Family* f = find(fams, "wattprobe_process_energy_joules_total");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->type, MetricType::counter);
  ASSERT_EQ(f->series.size(), 3u);
  EXPECT_EQ(label(f->series[0], "pid"), "11");
  EXPECT_EQ(label(f->series[0], "comm"), "c1");
  EXPECT_EQ(label(f->series[0], "workload"), "web.service");
  EXPECT_DOUBLE_EQ(f->series[0].value, 40);
  EXPECT_EQ(label(f->series[1], "pid"), "13");
  EXPECT_DOUBLE_EQ(f->series[1].value, 30);
  EXPECT_EQ(label(f->series[2], "pid"), "14");
  EXPECT_DOUBLE_EQ(f->series[2].value, 15);
  for (const auto& s : f->series) EXPECT_EQ(s.labels.size(), 3u);  // pid, comm, workload only
}

TEST(ProcessEnergy, CapBoundsMemoryUnderChurn) {
  ProcessEnergy p(20, minutes(5));
  ASSERT_EQ(p.cap(), 256u);
  uint32_t next_pid = 1000;
  const std::size_t ticks = 100, per_tick = 1000, long_running = 5;
  for (std::size_t t = 1; t <= ticks; ++t) {
    CpuTick cpu;
    cpu.workloads = {workload("batch.service", 0), workload("db.service", 0)};
    // 1,000 new short-lived processes a tick: 100,000 identities in all.
    for (std::size_t k = 0; k < per_tick; ++k) {
      cpu.processes.push_back(process(next_pid++, t, "job", 0, 1'000));
      cpu.workloads[0].cpu_ns += 1'000;
    }
    for (uint32_t k = 0; k < long_running; ++k) {
      cpu.processes.push_back(process(1 + k, 0, "db", 1, 10'000'000));
      cpu.workloads[1].cpu_ns += 10'000'000;
    }
    const double joules[] = {1.0, 50.0};
    p.add(cpu, joules, static_cast<int64_t>(t) * 1000);
    ASSERT_LE(p.tracked(), p.cap()) << "tick " << t;
  }
  EXPECT_EQ(p.evicted(), ticks * per_tick + long_running - p.tracked());
  auto top = p.top();
  ASSERT_EQ(top.size(), 20u);
  for (std::size_t i = 0; i < long_running; ++i) {
    EXPECT_EQ(top[i].comm, "db");
    EXPECT_NEAR(top[i].joules, 10.0 * ticks, 1e-9);
  }
}

TEST(ProcessEnergy, PidReuseStartsANewSeries) {
  ProcessEnergy p(5, minutes(5));
  CpuTick cpu;
  cpu.workloads = {workload("a.service", 100)};
  cpu.processes = {process(42, 1'000, "old", 0, 100)};
  const double joules[] = {10.0};
  p.add(cpu, joules, 1000);
  p.add(cpu, joules, 2000);
  ASSERT_EQ(p.top().size(), 1u);
  EXPECT_DOUBLE_EQ(p.top()[0].joules, 20);

  // The kernel gives pid 42 to a new process; the old one's last slice lands in the same tick.
  cpu.workloads = {workload("b.service", 200)};
  cpu.processes = {process(42, 9'000, "new", 0, 100), process(42, 1'000, "old", 0, 100)};
  p.add(cpu, joules, 3000);
  auto top = p.top();
  ASSERT_EQ(top.size(), 1u);
  EXPECT_EQ(top[0].start_time_ns, 9'000u);
  EXPECT_EQ(top[0].comm, "new");
  EXPECT_EQ(top[0].workload, "b.service");
  EXPECT_DOUBLE_EQ(top[0].joules, 5);  // half of b's 10 J; the old process's 20 J are not carried
}

TEST(ProcessEnergy, GoneProcessesLeaveAfterTheExpiry) {
  ProcessEnergy p(5, std::chrono::seconds(10));
  CpuTick cpu;
  cpu.workloads = {workload("a.service", 100)};
  cpu.processes = {process(1, 1, "x", 0, 100)};
  const double joules[] = {1.0};
  p.add(cpu, joules, 1000);
  cpu.processes = {process(2, 1, "y", 0, 100)};
  p.add(cpu, joules, 10'000);
  EXPECT_EQ(p.tracked(), 2u);
  p.add(cpu, joules, 12'000);
  ASSERT_EQ(p.tracked(), 1u);
  EXPECT_EQ(p.top()[0].pid, 2u);
  EXPECT_EQ(p.evicted(), 0u);  // expiry is not eviction
}

TEST(ProcessEnergy, CommBecomesAPrintableLabel) {
  ProcessEnergy p(5, minutes(5));
  CpuTick cpu;
  cpu.workloads = {workload("a.service", 100)};
  cpu.processes = {process(1, 1, std::string("ev\x1bil\n\xff", 7), 0, 100)};
  const double joules[] = {1.0};
  p.add(cpu, joules, 1000);
  EXPECT_EQ(p.top()[0].comm, "ev?il??");
}

TEST(ProcessEnergy, OffByDefault) {
  Attribution a({});
  CpuTick cpu;
  cpu.capacity_ns = 1000;
  cpu.workloads = {workload("a.service", 100)};
  cpu.processes = {process(1, 1, "x", 0, 100)};
  NodeEnergy e;
  e.seconds = 1;
  e.domains = {row("package", 10)};
  a.apply(e, cpu, 1000);
  std::vector<Family> fams;
  a.append_families(fams);
  EXPECT_EQ(find(fams, "wattprobe_process_energy_joules_total"), nullptr);
  EXPECT_EQ(a.processes().tracked(), 0u);
}

}  // namespace
}  // namespace wattprobe
