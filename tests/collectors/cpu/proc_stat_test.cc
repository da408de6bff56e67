#include "collectors/cpu/proc_stat.h"

#include <gtest/gtest.h>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

// Copied from a 2-vCPU Debian 12 VM (kernel 6.x), trimmed after ctxt.
constexpr std::string_view kTwoCpus =
    "cpu  6320 10 5973 491778 444 3 216 50 100 4\n"
    "cpu0 2483 4 2464 247216 16 1 77 20 60 2\n"
    "cpu1 3836 6 3509 244562 428 2 138 30 40 2\n"
    "intr 257172 0 0 0 0 0 0 0 0\n"
    "ctxt 422850\n"
    "btime 1718000000\n"
    "processes 12345\n"
    "procs_running 1\n"
    "procs_blocked 0\n"
    "softirq 100 1 2 3 4 5 6 7 8 9 10\n";

TEST(ProcStat, ReadsAggregateAndEveryOnlineCpu) {
  testing::TempTree tree;
  tree.write("proc/stat", kTwoCpus);
  auto stat = read_proc_stat(tree.paths());
  ASSERT_TRUE(stat.ok()) << stat.error().message();
  EXPECT_EQ(stat->online_cpus(), 2);
  const CpuTimes& a = stat->aggregate;
  EXPECT_EQ(a.user, 6320u);
  EXPECT_EQ(a.nice, 10u);
  EXPECT_EQ(a.system, 5973u);
  EXPECT_EQ(a.idle, 491778u);
  EXPECT_EQ(a.iowait, 444u);
  EXPECT_EQ(a.irq, 3u);
  EXPECT_EQ(a.softirq, 216u);
  EXPECT_EQ(a.steal, 50u);
  EXPECT_EQ(a.guest, 100u);
  EXPECT_EQ(a.guest_nice, 4u);
  EXPECT_EQ(stat->per_cpu[0].cpu, 0);
  EXPECT_EQ(stat->per_cpu[1].cpu, 1);
  EXPECT_EQ(stat->per_cpu[1].times.idle, 244562u);
}

TEST(ProcStat, BusyLeavesOutIdleIowaitStealAndGuestWhichIsInsideUser) {
  CpuTimes t{100, 10, 50, 800, 20, 5, 15, 7, 60, 3};
  EXPECT_EQ(t.busy(), 100u + 10 + 50 + 5 + 15);
  EXPECT_EQ(t.total(), 180u + 800 + 20 + 7);
}

TEST(ProcStat, OfflineCpusAreMissingFromTheFileAndFromTheCount) {
  auto stat = parse_cpu_stat(
      "cpu  30 0 30 300 0 0 0 0 0 0\n"
      "cpu0 10 0 10 100 0 0 0 0 0 0\n"
      "cpu2 10 0 10 100 0 0 0 0 0 0\n"
      "cpu3 10 0 10 100 0 0 0 0 0 0\n",
      "/proc/stat");
  ASSERT_TRUE(stat.ok()) << stat.error().message();
  EXPECT_EQ(stat->online_cpus(), 3);
  EXPECT_EQ(stat->per_cpu[1].cpu, 2);
}

TEST(ProcStat, OldKernelsWithFewerColumnsReadAsZero) {
  auto stat = parse_cpu_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\n", "/proc/stat");
  ASSERT_TRUE(stat.ok()) << stat.error().message();
  EXPECT_EQ(stat->aggregate.idle, 4u);
  EXPECT_EQ(stat->aggregate.steal, 0u);
}

TEST(ProcStat, ExtraNumericColumnsOfAFutureKernelAreIgnored) {
  auto stat =
      parse_cpu_stat("cpu  1 2 3 4 5 6 7 8 9 10 11\ncpu0 1 2 3 4 5 6 7 8 9 10 11\n", "/proc/stat");
  ASSERT_TRUE(stat.ok()) << stat.error().message();
  EXPECT_EQ(stat->aggregate.guest_nice, 10u);
}

TEST(ProcStat, MalformedLinesAreErrorsNamingTheFileAndTheLine) {
  struct Case {
    std::string_view text;
    std::string_view in_message;
  };
  for (const Case& c : {
           Case{"cpu  1 2 x 4\ncpu0 1 2 3 4\n", "cpu  1 2 x 4"},
           Case{"cpu  1 2 3\ncpu0 1 2 3 4\n", "3 columns"},
           Case{"cpu  1 2 3 -4\ncpu0 1 2 3 4\n", "-4"},
           Case{"cpu  1 2 3 99999999999999999999\ncpu0 1 2 3 4\n", "99999999999999999999"},
           Case{"cpu0 1 2 3 4\n", "no aggregate"},
           Case{"cpu  1 2 3 4\n", "no per-CPU"},
           Case{"cpu  1 2 3 4\ncpu  1 2 3 4\ncpu0 1 2 3 4\n", "second aggregate"},
           Case{"cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu0 1 2 3 4\n", "twice"},
           Case{"cpu  1 2 3 4\ncpux 1 2 3 4\n", "cpux"},
           Case{"", "no aggregate"},
       }) {
    auto stat = parse_cpu_stat(c.text, "/host/proc/stat");
    ASSERT_FALSE(stat.ok()) << c.text;
    EXPECT_EQ(stat.error().kind, ErrorKind::malformed) << c.text;
    std::string message = stat.error().message();
    EXPECT_NE(message.find("/host/proc/stat"), std::string::npos) << message;
    EXPECT_NE(message.find(c.in_message), std::string::npos) << message;
  }
}

TEST(ProcStat, MissingFileIsAbsent) {
  testing::TempTree tree;
  auto stat = read_proc_stat(tree.paths());
  ASSERT_FALSE(stat.ok());
  EXPECT_EQ(stat.error().kind, ErrorKind::absent);
}

TEST(ProcStat, ReadsThisHostsRealProcStat) {
  auto stat = read_proc_stat(HostPaths{});
  ASSERT_TRUE(stat.ok()) << stat.error().message();
  EXPECT_GE(stat->online_cpus(), 1);
  EXPECT_GT(stat->aggregate.total(), 0u);
  EXPECT_LE(stat->aggregate.busy(), stat->aggregate.total());
}

}  // namespace
}  // namespace wattprobe
