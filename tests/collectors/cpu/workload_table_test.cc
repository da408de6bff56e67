#include "collectors/cpu/workload_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace wattprobe {
namespace {

WorkloadId service(const std::string& name) { return WorkloadId{name, "service", "", "", ""}; }

const WorkloadCpu* find(const CpuTick& tick, const std::string& name) {
  for (const auto& w : tick.workloads)
    if (w.id.workload == name) return &w;
  return nullptr;
}

TEST(WorkloadTable, SumsTasksPerWorkloadForOneTick) {
  WorkloadTable table(10);
  table.add(service("nginx.service"), 3'000'000, 100, 50);
  table.add(service("nginx.service"), 2'000'000, 10, 5);
  table.add(service("sshd.service"), 1'000'000);
  CpuTick tick;
  table.finish(tick);
  ASSERT_EQ(tick.workloads.size(), 2u);
  EXPECT_EQ(find(tick, "nginx.service")->cpu_ns, 5'000'000u);
  EXPECT_EQ(find(tick, "nginx.service")->cycles, 110u);
  EXPECT_EQ(find(tick, "nginx.service")->instructions, 55u);
  EXPECT_EQ(find(tick, "sshd.service")->cpu_ns, 1'000'000u);
  EXPECT_EQ(tick.unaccounted_ns, 0u);
  EXPECT_EQ(tick.workloads_dropped, 0u);

  // The next tick starts from zero and lists only workloads that ran.
  table.add(service("sshd.service"), 7);
  table.add(service("nginx.service"), 0);
  CpuTick next;
  table.finish(next);
  ASSERT_EQ(next.workloads.size(), 1u);
  EXPECT_EQ(next.workloads[0].id.workload, "sshd.service");
  EXPECT_EQ(next.workloads[0].cpu_ns, 7u);
}

TEST(WorkloadTable, SameNameDifferentKindOrPodAreDifferentWorkloads) {
  WorkloadTable table(10);
  table.add(WorkloadId{"a", "service", "", "", ""}, 1);
  table.add(WorkloadId{"a", "container", "", "", "a"}, 2);
  table.add(WorkloadId{"ns/p/c", "pod", "ns", "p", "c"}, 3);
  table.add(WorkloadId{"ns/p/c", "pod", "ns", "p2", "c"}, 4);
  CpuTick tick;
  table.finish(tick);
  EXPECT_EQ(tick.workloads.size(), 4u);
}

TEST(WorkloadTable, CapRefusesNewWorkloadsAndCountsTheirTime) {
  WorkloadTable table(2);
  EXPECT_TRUE(table.add(service("a.service"), 10).has_value());
  EXPECT_TRUE(table.add(service("b.service"), 20).has_value());
  EXPECT_FALSE(table.add(service("c.service"), 30).has_value());
  EXPECT_FALSE(table.add(service("c.service"), 5).has_value());
  EXPECT_FALSE(table.add(service("d.service"), 40).has_value());
  EXPECT_TRUE(table.add(service("a.service"), 1).has_value()) << "an admitted workload stays";
  CpuTick tick;
  tick.unaccounted_ns = 1000;  // e.g. lost BPF records, added by the caller
  table.finish(tick);
  EXPECT_EQ(tick.workloads.size(), 2u);
  EXPECT_EQ(find(tick, "a.service")->cpu_ns, 11u);
  EXPECT_EQ(tick.unaccounted_ns, 1000u + 30 + 5 + 40);
  EXPECT_EQ(tick.workloads_dropped, 2u) << "c and d, each once";

  // Conservation: everything added is either a workload's or unaccounted.
  uint64_t sum = tick.unaccounted_ns - 1000;
  for (const auto& w : tick.workloads) sum += w.cpu_ns;
  EXPECT_EQ(sum, 10u + 20 + 30 + 5 + 40 + 1);

  CpuTick next;
  table.finish(next);
  EXPECT_EQ(next.unaccounted_ns, 0u);
  EXPECT_EQ(next.workloads_dropped, 0u);
}

TEST(WorkloadTable, IdleWorkloadsAreForgottenSoNewOnesFit) {
  WorkloadTable table(2, /*idle_ticks_to_forget=*/3);
  table.add(service("old.service"), 10);
  table.add(service("busy.service"), 10);
  CpuTick t;
  table.finish(t);
  for (int i = 0; i < 2; ++i) {
    table.add(service("busy.service"), 10);
    EXPECT_FALSE(table.add(service("new.service"), 10).has_value());
    CpuTick tick;
    table.finish(tick);
  }
  table.add(service("busy.service"), 10);
  CpuTick third;
  table.finish(third);  // old.service's third idle tick: forgotten
  EXPECT_EQ(table.tracked(), 1u);
  EXPECT_TRUE(table.add(service("new.service"), 10).has_value());
  EXPECT_TRUE(table.add(service("busy.service"), 10).has_value());
  CpuTick after;
  table.finish(after);
  EXPECT_EQ(after.workloads.size(), 2u);
  EXPECT_EQ(after.workloads_dropped, 0u);
}

TEST(WorkloadTable, MemoryStaysBoundedUnderChurn) {
  WorkloadTable table(100, 2);
  for (int tick_no = 0; tick_no < 200; ++tick_no) {
    for (int i = 0; i < 500; ++i) table.add(service("u" + std::to_string(tick_no * 500 + i)), 1);
    CpuTick tick;
    table.finish(tick);
    EXPECT_LE(tick.workloads.size(), 100u);
    EXPECT_LE(table.tracked(), 100u);
  }
}

TEST(WorkloadTable, ProcessesPointAtTheirWorkloadInTheTick) {
  WorkloadTable table(10);
  CpuTick tick;
  auto idle = table.add(service("idle.service"), 0);
  auto a = table.add(service("a.service"), 5);
  auto b = table.add(service("b.service"), 7);
  ASSERT_TRUE(idle && a && b);
  tick.processes.push_back(ProcessCpu{1, 0, "idler", *idle, 0});
  tick.processes.push_back(ProcessCpu{2, 0, "b-worker", *b, 7});
  tick.processes.push_back(ProcessCpu{3, 0, "a-worker", *a, 5});
  table.finish(tick);
  ASSERT_EQ(tick.processes.size(), 2u) << "a process of a workload without CPU is dropped";
  for (const auto& p : tick.processes) {
    ASSERT_LT(p.workload, tick.workloads.size());
    EXPECT_EQ(tick.workloads[p.workload].cpu_ns, p.cpu_ns) << p.comm;
  }
  EXPECT_EQ(tick.workloads[tick.processes[0].workload].id.workload, "b.service");
}

// Its cost is a benchmark (tests/bench/tick_bench.cc BM_WorkloadTableFold), not a timed assertion.
TEST(WorkloadTable, TenThousandTasksFoldIntoTheirWorkloadsEveryTick) {
  WorkloadTable table(1000);
  std::vector<WorkloadId> ids;
  for (int i = 0; i < 500; ++i) ids.push_back(service("svc-" + std::to_string(i) + ".service"));
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 10000; ++i) table.add(ids[static_cast<std::size_t>(i) % ids.size()], 1000);
    CpuTick tick;
    table.finish(tick);
    ASSERT_EQ(tick.workloads.size(), 500u);
    for (const WorkloadCpu& w : tick.workloads) ASSERT_EQ(w.cpu_ns, 20u * 1000) << w.id.workload;
  }
}

}  // namespace
}  // namespace wattprobe
