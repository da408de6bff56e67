#include "collectors/cpu/cgroup_cpu.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace wattprobe {
namespace {

constexpr uint64_t kMs = 1'000'000;

// Cgroup ids resolve to "cg<id>" unless mapped.
struct Names {
  std::map<uint64_t, std::string> names;
  std::map<uint64_t, int> calls;
  CgroupCpuDrain::Resolver callback() {
    return [this](uint64_t id) {
      ++calls[id];
      WorkloadId w;
      auto it = names.find(id);
      w.workload = it != names.end() ? it->second : "cg" + std::to_string(id);
      w.kind = "service";
      return w;
    };
  }
};

uint64_t cpu_of(const CpuTick& tick, const std::string& workload) {
  uint64_t ns = 0;
  for (const auto& w : tick.workloads)
    if (w.id.workload == workload) ns += w.cpu_ns;
  return ns;
}

// root 1 ← 2 (system.slice) ← {3 a.service, 4 b.service}
CgroupTreeReading reading(uint64_t t_ms, std::vector<CgroupTime> cgroups, uint64_t idle_ms = 0) {
  CgroupTreeReading r;
  r.cgroups = std::move(cgroups);
  r.monotonic_ns = t_ms * kMs;
  r.online_cpus = 2;
  r.idle_ns = idle_ms * kMs;
  r.idle_known = true;
  return r;
}

TEST(CgroupCpuDrain, FirstDrainPrimesThenEachCgroupGetsItsOwnGrowth) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  CpuTick first = drain.drain(
      reading(0, {{1, 0, 500 * kMs}, {2, 1, 300 * kMs}, {3, 2, 200 * kMs}, {4, 2, 100 * kMs}}));
  EXPECT_TRUE(first.workloads.empty());
  EXPECT_EQ(first.capacity_ns, 0u);

  // a grew 300 ms, b 100 ms, the slice itself 20 ms of its own, the root 50 ms of its own.
  CpuTick tick = drain.drain(reading(
      1000, {{1, 0, 970 * kMs}, {2, 1, 720 * kMs}, {3, 2, 500 * kMs}, {4, 2, 200 * kMs}}, 900));
  EXPECT_EQ(cpu_of(tick, "cg3"), 300 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg4"), 100 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg2"), 20 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg1"), 50 * kMs);
  EXPECT_EQ(tick.capacity_ns, 2 * 1000 * kMs);
  EXPECT_EQ(tick.idle_ns, 900 * kMs);
  EXPECT_EQ(tick.unaccounted_ns, 0u);
}

TEST(CgroupCpuDrain, ACgroupNewSinceTheLastReadingCountsAllItsTime) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 100 * kMs}, {2, 1, 50 * kMs}}));
  // 5 appeared under 2 and used 40 ms; 2's usage holds it.
  CpuTick tick =
      drain.drain(reading(1000, {{1, 0, 200 * kMs}, {2, 1, 140 * kMs}, {5, 2, 40 * kMs}}));
  EXPECT_EQ(cpu_of(tick, "cg5"), 40 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg2"), 50 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg1"), 10 * kMs);
}

TEST(CgroupCpuDrain, ARemovedCgroupsLastSliceStaysWithItsParentNotItsWholeLife) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {2, 1, 1000 * kMs}, {3, 2, 900 * kMs}}));
  // 3 used 30 ms more and was removed: the kernel folded it into 2, which used 5 ms itself.
  CpuTick tick = drain.drain(reading(1000, {{1, 0, 35 * kMs}, {2, 1, 1035 * kMs}}));
  EXPECT_EQ(cpu_of(tick, "cg2"), 35 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg3"), 0u);
  EXPECT_EQ(cpu_of(tick, "cg1"), 0u);
  // And 3's earlier 900 ms are not counted again later.
  CpuTick later = drain.drain(reading(2000, {{1, 0, 35 * kMs}, {2, 1, 1035 * kMs}}));
  EXPECT_TRUE(later.workloads.empty());
}

TEST(CgroupCpuDrain, CgroupsOfOneWorkloadAddUpAndIdentitiesAreAskedOnce) {
  Names names;
  names.names = {{3, "shop/api/app"}, {4, "shop/api/app"}};
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {3, 1, 0}, {4, 1, 0}}));
  for (int t = 1; t <= 5; ++t) {
    CpuTick tick = drain.drain(reading(1000 * t, {{1, 0, uint64_t(t) * 30 * kMs},
                                                  {3, 1, uint64_t(t) * 10 * kMs},
                                                  {4, 1, uint64_t(t) * 20 * kMs}}));
    ASSERT_EQ(tick.workloads.size(), 1u);
    EXPECT_EQ(cpu_of(tick, "shop/api/app"), 30 * kMs);
  }
  EXPECT_EQ(names.calls[3], 1);
  EXPECT_EQ(names.calls[4], 1);
}

TEST(CgroupCpuDrain, PastTheCapTheTimeIsUnaccountedNotLost) {
  Names names;
  CgroupCpuDrain drain(2, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {3, 1, 0}, {4, 1, 0}, {5, 1, 0}}));
  CpuTick tick = drain.drain(
      reading(1000, {{1, 0, 60 * kMs}, {3, 1, 10 * kMs}, {4, 1, 20 * kMs}, {5, 1, 30 * kMs}}));
  uint64_t given = 0;
  for (const auto& w : tick.workloads) given += w.cpu_ns;
  EXPECT_EQ(tick.workloads.size(), 2u);
  EXPECT_EQ(given + tick.unaccounted_ns, 60 * kMs);
  EXPECT_EQ(tick.workloads_dropped, 1u);
}

TEST(CgroupCpuDrain, AParentBehindItsChildrenGivesNothingNowAndOwesItLater) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {2, 1, 100 * kMs}, {3, 2, 100 * kMs}}));
  // A flush between reading 3 and 2 would show 3 ahead of 2.
  CpuTick tick = drain.drain(reading(1000, {{1, 0, 0}, {2, 1, 100 * kMs}, {3, 2, 110 * kMs}}));
  EXPECT_EQ(cpu_of(tick, "cg3"), 10 * kMs);
  EXPECT_EQ(cpu_of(tick, "cg2"), 0u);
  EXPECT_EQ(cpu_of(tick, "cg1"), 0u);
  // The flush reaches 2 a tick late: those 10 ms are 3's, counted already, not 2's own.
  CpuTick next = drain.drain(reading(2000, {{1, 0, 0}, {2, 1, 115 * kMs}, {3, 2, 110 * kMs}}));
  EXPECT_EQ(cpu_of(next, "cg2"), 5 * kMs);
  EXPECT_EQ(cpu_of(next, "cg3"), 0u);
}

TEST(CgroupCpuDrain, TheRootsSampledCountBehindItsChildrenEvensOutOverTicks) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {3, 1, 0}}));
  // The root's count (kcpustat) moves in 4 ms scheduler ticks; its child's is exact, 7 ms a
  // tick. After five ticks the root has 36 ms, the child 35: the root's own time is 1 ms, though
  // in four ticks its sample ran ahead of the child by 1 ms (dropping the shortfalls would give 4).
  const uint64_t root_steps[] = {4, 8, 8, 8, 8};
  uint64_t root = 0, child = 0, root_own = 0;
  for (int t = 0; t < 5; ++t) {
    child += 7 * kMs;
    root += root_steps[t] * kMs;
    CpuTick tick = drain.drain(reading(1000 * (t + 1), {{1, 0, root}, {3, 1, child}}));
    root_own += cpu_of(tick, "cg1");
    EXPECT_EQ(cpu_of(tick, "cg3"), 7 * kMs);
  }
  EXPECT_EQ(root_own, 1 * kMs);
}

TEST(CgroupCpuDrain, IdleIsLeftOutWhenEitherReadingLacksIt) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  CgroupTreeReading r0 = reading(0, {{1, 0, 0}}, 100);
  r0.idle_known = false;
  drain.drain(r0);
  CpuTick tick = drain.drain(reading(1000, {{1, 0, 0}}, 900));
  EXPECT_EQ(tick.idle_ns, 0u);
  EXPECT_EQ(tick.capacity_ns, 2000 * kMs);
}

TEST(CgroupCpuDrain, LostCgroupsAreCountedPerTick) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  CgroupTreeReading r0 = reading(0, {{1, 0, 0}});
  r0.cgroups_lost = 3;
  drain.drain(r0);
  CgroupTreeReading r1 = reading(1000, {{1, 0, 0}});
  r1.cgroups_lost = 5;
  EXPECT_EQ(drain.drain(r1).records_lost, 2u);
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

bool ended(const CpuTick& tick, const std::string& workload) {
  for (const auto& id : tick.ended)
    if (id.workload == workload) return true;
  return false;
}

TEST(CgroupCpuDrain, AWorkloadEndsWhenItsCgroupIsRemovedNotWhenItGoesIdle) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {2, 1, 0}, {3, 2, 0}}));
  CpuTick ran =
      drain.drain(reading(1000, {{1, 0, 300 * kMs}, {2, 1, 300 * kMs}, {3, 2, 300 * kMs}}));
  EXPECT_EQ(cpu_of(ran, "cg3"), 300 * kMs);
  EXPECT_TRUE(ran.ended.empty());
  // Idle for ticks: still there, so it has not ended.
  for (uint64_t t = 2000; t <= 5000; t += 1000) {
    CpuTick idle =
        drain.drain(reading(t, {{1, 0, 300 * kMs}, {2, 1, 300 * kMs}, {3, 2, 300 * kMs}}));
    EXPECT_TRUE(idle.ended.empty()) << t;
  }
  // Its cgroup removed: it ended, once.
  CpuTick gone = drain.drain(reading(6000, {{1, 0, 300 * kMs}, {2, 1, 300 * kMs}}));
  ASSERT_EQ(gone.ended.size(), 1u);
  EXPECT_EQ(gone.ended[0].workload, "cg3");
  CpuTick after = drain.drain(reading(7000, {{1, 0, 300 * kMs}, {2, 1, 300 * kMs}}));
  EXPECT_TRUE(after.ended.empty());
}

TEST(CgroupCpuDrain, AWorkloadWithAnotherCgroupLeftHasNotEnded) {
  Names names;
  names.names = {{3, "job.service"}, {4, "job.service"}, {5, "job.service"}};
  CgroupCpuDrain drain(100, names.callback());
  // 3 is the service; 4 and 5 its sub-cgroups. 3 itself never runs anything.
  drain.drain(reading(0, {{1, 0, 0}, {3, 1, 0}, {4, 3, 0}, {5, 3, 0}}));
  drain.drain(
      reading(1000, {{1, 0, 200 * kMs}, {3, 1, 200 * kMs}, {4, 3, 100 * kMs}, {5, 3, 100 * kMs}}));
  // One sub-cgroup goes: the other holds the service.
  CpuTick one =
      drain.drain(reading(2000, {{1, 0, 200 * kMs}, {3, 1, 200 * kMs}, {5, 3, 100 * kMs}}));
  EXPECT_FALSE(ended(one, "job.service"));
  // The last sub-cgroup goes but the service's own cgroup is still there: not ended.
  CpuTick two = drain.drain(reading(3000, {{1, 0, 200 * kMs}, {3, 1, 200 * kMs}}));
  EXPECT_FALSE(ended(two, "job.service"));
  // The service's cgroup goes: now it has.
  CpuTick three = drain.drain(reading(4000, {{1, 0, 200 * kMs}}));
  EXPECT_TRUE(ended(three, "job.service"));
}

TEST(CgroupCpuDrain, AReadingThatLostCgroupsEndsNothing) {
  Names names;
  CgroupCpuDrain drain(100, names.callback());
  drain.drain(reading(0, {{1, 0, 0}, {3, 1, 0}}));
  drain.drain(reading(1000, {{1, 0, 100 * kMs}, {3, 1, 100 * kMs}}));
  CgroupTreeReading full = reading(2000, {{1, 0, 100 * kMs}});
  full.cgroups_lost = 1;  // 3 may only have had no room
  EXPECT_TRUE(drain.drain(full).ended.empty());
  CgroupTreeReading whole = reading(3000, {{1, 0, 100 * kMs}});
  whole.cgroups_lost = 1;  // no more lost since the last reading
  EXPECT_TRUE(ended(drain.drain(whole), "cg3"));
}

}  // namespace
}  // namespace wattprobe
