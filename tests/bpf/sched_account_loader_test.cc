#include "bpf/sched_account_loader.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/text_file.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::Field;

// ---- Drain logic against a fake map: what the kernel map would hold, tick by tick. ----

TaskRecord task(uint32_t tgid, uint64_t start, uint64_t cpu_ns, uint64_t cgroup,
                bool exited = false) {
  return TaskRecord{.tgid = tgid,
                    .start_time_ns = start,
                    .cpu_ns = cpu_ns,
                    .cgroup_id = cgroup,
                    .exited = exited,
                    .kernel_thread = false,
                    .comm = "task" + std::to_string(tgid)};
}

WorkloadId workload(std::string name, std::string kind) {
  WorkloadId id;
  id.workload = std::move(name);
  id.kind = std::move(kind);
  return id;
}

WorkloadId service(std::string name) { return workload(std::move(name), "service"); }

// Cgroup ids 100 + n resolve to "svc<n>.service"; the counts show the cache at work.
struct CountingResolver {
  std::map<uint64_t, int> calls;
  WorkloadResolver callback() {
    return [this](uint64_t id) {
      ++calls[id];
      return service("svc" + std::to_string(id - 100) + ".service");
    };
  }
};

uint64_t cpu_of(const CpuTick& tick, const std::string& workload) {
  uint64_t ns = 0;
  for (const auto& w : tick.workloads)
    if (w.id.workload == workload) ns += w.cpu_ns;
  return ns;
}

uint64_t total_cpu(const CpuTick& tick) {
  uint64_t ns = tick.unaccounted_ns;
  for (const auto& w : tick.workloads) ns += w.cpu_ns;
  return ns;
}

constexpr uint64_t kSecond = 1'000'000'000;

TEST(TaskDrain, FirstDrainPrimesThenReportsTimeSincePerWorkload) {
  CountingResolver resolver;
  TaskDrain drain({}, resolver.callback(), 2);
  TaskMapSnapshot first{.tasks = {task(10, 5, 700, 101), task(11, 6, 50, 102)}, .idle_ns = 1000};
  CpuTick primed = drain.drain(first, 10 * kSecond);
  EXPECT_TRUE(primed.workloads.empty());
  EXPECT_EQ(primed.capacity_ns, 0u);

  TaskMapSnapshot second{
      .tasks = {task(10, 5, 1'200, 101), task(11, 6, 50, 102), task(12, 7, 300, 101)},
      .idle_ns = 1'000 + 1'500'000'000};
  CpuTick tick = drain.drain(second, 11 * kSecond);
  // tgid 11 did not run: no series for svc2 this tick.
  ASSERT_THAT(tick.workloads, ElementsAre(Field(&WorkloadCpu::id, service("svc1.service"))));
  EXPECT_EQ(tick.workloads[0].cpu_ns, 500u + 300u);
  EXPECT_EQ(tick.capacity_ns, 2 * kSecond);  // 2 online CPUs × 1 s
  EXPECT_EQ(tick.idle_ns, 1'500'000'000u);
  EXPECT_EQ(tick.unaccounted_ns, 0u);
  EXPECT_TRUE(tick.processes.empty());  // not asked for
}

TEST(TaskDrain, ReusedPidWithNewStartTimeIsANewTask) {
  CountingResolver resolver;
  TaskDrain drain({.per_process = true}, resolver.callback(), 1);
  (void)drain.drain({.tasks = {task(42, 1'000, 5'000, 101)}}, 0);
  // The first tgid 42 exits (the reader deleted its record); a new process gets pid 42 at once.
  CpuTick tick = drain.drain(
      {.tasks = {task(42, 1'000, 5'400, 101, /*exited=*/true), task(42, 9'000, 80, 102)}}, kSecond);
  EXPECT_EQ(cpu_of(tick, "svc1.service"), 400u);
  EXPECT_EQ(cpu_of(tick, "svc2.service"), 80u);  // not 80 - 5'400, not 0
  ASSERT_EQ(tick.processes.size(), 2u);
  EXPECT_EQ(tick.processes[1].pid, 42u);
  EXPECT_EQ(tick.processes[1].start_time_ns, 9'000u);
  EXPECT_EQ(tick.processes[1].cpu_ns, 80u);
  EXPECT_EQ(tick.workloads[tick.processes[1].workload].id, service("svc2.service"));

  tick = drain.drain({.tasks = {task(42, 9'000, 100, 102)}}, 2 * kSecond);
  EXPECT_EQ(cpu_of(tick, "svc1.service"), 0u);
  EXPECT_EQ(cpu_of(tick, "svc2.service"), 20u);
}

// The kernel map keeps the comm of a record's first slice: a forked child's is its parent's until
// exec. Per-process metrics ask once per new process for the comm it runs under now.
TEST(TaskDrain, ProcessesCarryTheirCurrentCommAskedOncePerProcess) {
  CountingResolver resolver;
  std::map<uint32_t, int> asked;
  CommResolver comm = [&](uint32_t tgid) -> std::optional<std::string> {
    ++asked[tgid];
    if (tgid == 9) return std::nullopt;  // gone before the drain asked
    return "exec" + std::to_string(tgid);
  };
  TaskDrain drain({.per_process = true}, resolver.callback(), 1, comm);
  (void)drain.drain({.tasks = {task(7, 1, 0, 101), task(8, 1, 0, 101)}}, 0);
  CpuTick tick = drain.drain(
      {.tasks = {task(7, 1, 100, 101), task(8, 1, 50, 101, /*exited=*/true), task(9, 1, 10, 101)}},
      kSecond);
  ASSERT_EQ(tick.processes.size(), 3u);
  std::map<uint32_t, std::string> comms;
  for (const auto& p : tick.processes) comms[p.pid] = p.comm;
  EXPECT_EQ(comms[7], "exec7");
  EXPECT_EQ(comms[8], "task8");  // exited: the record's comm, nothing to ask
  EXPECT_EQ(comms[9], "task9");
  tick = drain.drain({.tasks = {task(7, 1, 300, 101)}}, 2 * kSecond);
  ASSERT_EQ(tick.processes.size(), 1u);
  EXPECT_EQ(tick.processes[0].comm, "exec7");
  EXPECT_EQ(asked[7], 1);
  EXPECT_EQ(asked.count(8), 0u);
}

TEST(TaskDrain, ExitedGroupsLastSliceAfterDeletionIsCountedOnce) {
  CountingResolver resolver;
  TaskDrain drain({}, resolver.callback(), 1);
  (void)drain.drain({.tasks = {task(7, 1, 1'000, 101)}}, 0);
  CpuTick tick = drain.drain({.tasks = {task(7, 1, 1'500, 101, true)}}, kSecond);
  EXPECT_EQ(cpu_of(tick, "svc1.service"), 500u);
  // The final switch-out landed after user space deleted the record: the kernel made a fresh one
  // holding only that slice, already marked exited.
  tick = drain.drain({.tasks = {task(7, 1, 30, 101, true)}}, 2 * kSecond);
  EXPECT_EQ(cpu_of(tick, "svc1.service"), 30u);
  tick = drain.drain({}, 3 * kSecond);
  EXPECT_TRUE(tick.workloads.empty());
}

TEST(TaskDrain, CgroupRemovedWhileItsTasksDrainKeepsTheirTimeAndIsForgottenAfter) {
  CountingResolver resolver;
  TaskDrain drain({}, resolver.callback(), 1);
  (void)drain.drain({.tasks = {task(1, 1, 100, 105), task(2, 2, 100, 105)}}, 0);
  // The cgroup is rmdir'ed once both exited; their records still arrive in this drain.
  CpuTick tick =
      drain.drain({.tasks = {task(1, 1, 300, 105, true), task(2, 2, 250, 105, true)}}, kSecond);
  EXPECT_EQ(cpu_of(tick, "svc5.service"), 200u + 150u);
  EXPECT_EQ(resolver.calls[105], 1);  // resolved once, while the answer could still be found
  tick = drain.drain({}, 2 * kSecond);
  EXPECT_EQ(total_cpu(tick), 0u);
  // Forgotten: a later sighting (not possible for a real removed cgroup) asks again.
  (void)drain.drain({.tasks = {task(3, 3, 10, 105)}}, 3 * kSecond);
  EXPECT_EQ(resolver.calls[105], 2);
}

TEST(TaskDrain, CapKeepsTheBiggestWorkloadsAndCountsTheRestAsUnaccounted) {
  CountingResolver resolver;
  TaskDrain drain({.max_workloads = 2, .per_process = true}, resolver.callback(), 1);
  (void)drain.drain({}, 0);
  TaskMapSnapshot snapshot;
  uint64_t total = 0;
  for (uint32_t n = 1; n <= 6; ++n) {
    snapshot.tasks.push_back(task(n, n, n * 1'000, 100 + n));
    total += n * 1'000;
  }
  snapshot.lost_records = 3;
  snapshot.lost_ns = 77;
  CpuTick tick = drain.drain(snapshot, kSecond);
  ASSERT_EQ(tick.workloads.size(), 2u);
  EXPECT_EQ(tick.workloads[0].id, service("svc6.service"));
  EXPECT_EQ(tick.workloads[1].id, service("svc5.service"));
  EXPECT_EQ(tick.workloads_dropped, 4u);
  EXPECT_EQ(tick.records_lost, 3u);
  EXPECT_EQ(tick.unaccounted_ns, (1 + 2 + 3 + 4) * 1'000u + 77u);
  EXPECT_EQ(total_cpu(tick), total + 77);  // nothing lost, nothing twice
  ASSERT_EQ(tick.processes.size(), 2u);    // processes of dropped workloads are not reported
  for (const auto& p : tick.processes) EXPECT_LT(p.workload, tick.workloads.size());
}

TEST(TaskDrain, KernelThreadsAreKernelWhateverTheirCgroup) {
  CountingResolver resolver;
  TaskDrain drain({}, resolver.callback(), 1);
  (void)drain.drain({}, 0);
  TaskRecord kworker = task(3, 1, 900, 101);
  kworker.kernel_thread = true;
  CpuTick tick = drain.drain({.tasks = {kworker, task(4, 2, 100, 101)}}, kSecond);
  EXPECT_EQ(cpu_of(tick, "kernel"), 900u);
  EXPECT_EQ(cpu_of(tick, "svc1.service"), 100u);
  for (const auto& w : tick.workloads) {
    if (w.id.workload == "kernel") {
      EXPECT_EQ(w.id.kind, "kernel");
    }
  }
}

TEST(TaskDrain, ChurnOfShortLivedCgroupsStaysExactEveryTick) {
  CountingResolver resolver;
  TaskDrain drain({.max_workloads = 10}, resolver.callback(), 1);
  (void)drain.drain({}, 0);
  // 50 ticks of 1,000 short-lived groups in 1,000 distinct cgroups each: no growth of the
  // resolver cache beyond one tick's ids, so each id is resolved exactly once.
  for (uint32_t t = 0; t < 50; ++t) {
    TaskMapSnapshot snapshot;
    for (uint32_t i = 0; i < 1'000; ++i)
      snapshot.tasks.push_back(task(t * 1'000 + i, t, 10, 1'000 + t * 1'000 + i, true));
    CpuTick tick = drain.drain(snapshot, (t + 1) * kSecond);
    EXPECT_EQ(total_cpu(tick), 10'000u);
    EXPECT_EQ(tick.workloads.size(), 10u);
    EXPECT_EQ(tick.workloads_dropped, 990u);
  }
  EXPECT_EQ(resolver.calls.size(), 50'000u);
  for (const auto& [id, n] : resolver.calls) ASSERT_EQ(n, 1) << id;
}

TEST(OnlineCpuCount, ParsesTheKernelsCpuList) {
  testing::TempTree tree;
  tree.write("sys/devices/system/cpu/online", "0-1\n");
  EXPECT_EQ(*online_cpu_count(tree.paths()), 2u);
  tree.write("sys/devices/system/cpu/online", "0,2-3,8-15\n");
  EXPECT_EQ(*online_cpu_count(tree.paths()), 11u);
  tree.write("sys/devices/system/cpu/online", "0\n");
  EXPECT_EQ(*online_cpu_count(tree.paths()), 1u);
  for (std::string_view bad : {"", "\n", "1-0\n", "0-\n", "a-b\n", "0,\n", "0--1\n", "-1\n"}) {
    tree.write("sys/devices/system/cpu/online", bad);
    auto n = online_cpu_count(tree.paths());
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_EQ(n.error().kind, ErrorKind::malformed);
  }
  tree.remove("sys/devices/system/cpu/online");
  EXPECT_EQ(online_cpu_count(tree.paths()).error().kind, ErrorKind::absent);
}

TEST(BpfAccountingLoad, RefusesWithoutKernelBtfNamingIt) {
  testing::TempTree tree;  // a host without /sys/kernel/btf/vmlinux
  tree.write("proc/self/status", "Name:\twattprobe\nCapEff:\t000001ffffffffff\n");
  tree.write("sys/devices/system/cpu/online", "0-1\n");
  auto loaded = load_bpf_accounting(tree.paths(), {}, [](uint64_t) { return WorkloadId{}; });
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().kind, ErrorKind::unsupported);
  EXPECT_THAT(loaded.error().message(), ::testing::HasSubstr("kernel/btf/vmlinux"));
  EXPECT_THAT(loaded.error().message(), ::testing::HasSubstr("BTF"));
}

TEST(BpfAccountingLoad, RefusesWithoutCapabilitiesOrUnderConfidentialityLockdown) {
  testing::TempTree tree;
  tree.write("sys/kernel/btf/vmlinux", "BTF");
  tree.write("sys/devices/system/cpu/online", "0-1\n");
  tree.write("proc/self/status", "Name:\twattprobe\nCapEff:\t0000000000000000\n");
  auto loaded = load_bpf_accounting(tree.paths(), {}, [](uint64_t) { return WorkloadId{}; });
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().kind, ErrorKind::permission);
  EXPECT_THAT(loaded.error().detail, ::testing::HasSubstr("CAP_BPF"));

  // CAP_BPF (39) and CAP_PERFMON (38) alone are enough; lockdown still refuses.
  tree.write("proc/self/status", "CapEff:\t000000c000000000\n");
  tree.write("sys/kernel/security/lockdown", "none integrity [confidentiality]\n");
  loaded = load_bpf_accounting(tree.paths(), {}, [](uint64_t) { return WorkloadId{}; });
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.error().kind, ErrorKind::permission);
  EXPECT_THAT(loaded.error().detail, ::testing::HasSubstr("lockdown"));

  std::string report = BpfAccounting::kernel_support_report(tree.paths());
  EXPECT_THAT(report, ::testing::HasSubstr("lockdown: confidentiality"));
  EXPECT_THAT(report, ::testing::HasSubstr("CAP_BPF yes"));
  EXPECT_THAT(report, ::testing::HasSubstr("PMU cycles:"));
}

TEST(BpfAccountingLoad, UnprivilegedProcessIsRefusedWithPermission) {
  // Root ignores much of what would refuse a user, so the load is tried after dropping to nobody.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (geteuid() == 0 &&
        (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0))
      _exit(3);
    auto loaded = load_bpf_accounting(HostPaths{}, {}, [](uint64_t) { return WorkloadId{}; });
    if (loaded.ok()) _exit(1);
    std::fprintf(stderr, "unprivileged load refused: %s\n", loaded.error().message().c_str());
    _exit(loaded.error().kind == ErrorKind::permission ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: loaded; 2: refused with another kind; 3: setresuid";
}

TEST(TaskDrain, TenThousandTasksDrainFigure) {
  CountingResolver resolver;
  TaskDrain drain({.per_process = true}, resolver.callback(), 2);
  TaskMapSnapshot snapshot;
  for (uint32_t i = 0; i < 10'000; ++i)
    snapshot.tasks.push_back(task(i + 1, i, 1'000, 100 + i % 500));
  (void)drain.drain(snapshot, 0);
  for (auto& t : snapshot.tasks) t.cpu_ns += 5'000;
  auto start = std::chrono::steady_clock::now();
  CpuTick tick = drain.drain(snapshot, kSecond);
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(total_cpu(tick), 10'000u * 5'000u);
  EXPECT_EQ(tick.processes.size(), 10'000u);
  std::printf("drain of 10,000 tasks in 500 cgroups (user-space part): %.2f ms\n", ms);
}

// ---- The real kernel: root and BTF, or skipped with the reason. ----

std::optional<std::string> why_no_bpf() {
  if (geteuid() != 0)
    return "needs root to load eBPF programs (euid " + std::to_string(geteuid()) + ")";
  if (!fs::exists("/sys/kernel/btf/vmlinux"))
    return "kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load";
  return std::nullopt;
}

#define SKIP_WITHOUT_BPF()                                   \
  do {                                                       \
    if (auto reason = why_no_bpf()) GTEST_SKIP() << *reason; \
  } while (0)

// The cgroup v2 hierarchy: /sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
// one. The root of a v2 mount is the one with cgroup.controllers.
std::optional<fs::path> cgroup2_root() {
  for (const char* dir : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
    if (fs::exists(fs::path(dir) / "cgroup.controllers")) return fs::path(dir);
  return std::nullopt;
}

// A cgroup made by the test, removed (after its processes have gone) at the end.
class TestCgroup {
 public:
  explicit TestCgroup(const fs::path& root, const std::string& name)
      : path_(root / ("wattprobe-test-" + std::to_string(getpid()) + "-" + name)) {
    fs::create_directory(path_);
    struct stat st {};
    // The cgroup id bpf_get_current_cgroup_id() returns is the kernfs inode number.
    if (stat(path_.c_str(), &st) == 0) id_ = st.st_ino;
  }
  ~TestCgroup() {
    for (int i = 0; i < 100 && rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const fs::path& path() const { return path_; }
  uint64_t id() const { return id_; }
  // usage_usec of cpu.stat, the kernel's own CPU time of every task that was in it.
  uint64_t usage_ns() const {
    auto text = read_text(path_ / "cpu.stat");
    if (!text) return 0;
    std::string_view rest = *text;
    auto at = rest.find("usage_usec ");
    if (at == std::string_view::npos) return 0;
    rest.remove_prefix(at + 11);
    auto usec = parse_u64(rest.substr(0, rest.find('\n')), path_ / "cpu.stat");
    return usec ? *usec * 1'000 : 0;
  }

 private:
  fs::path path_;
  uint64_t id_ = 0;
};

// Starts a tool from the build's tools folder. With `cgroup`, the child joins it before exec, as a
// service manager or container runtime places a process, so all of the tool's time is the
// cgroup's (time before a move goes to the cgroup the task is in at its next switch-out).
pid_t start_tool(std::vector<std::string> args, const fs::path& cgroup = {}) {
  std::string tool = std::string(WATTPROBE_TOOLS_DIR) + "/" + args[0];
  std::string procs = cgroup.empty() ? std::string() : (cgroup / "cgroup.procs").string();
  pid_t pid = fork();
  if (pid == 0) {
    if (!procs.empty()) {
      int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      std::string self = std::to_string(getpid());
      if (fd < 0 || write(fd, self.data(), self.size()) < 0) _exit(126);
      close(fd);
    }
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(tool.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// Drains every `period` until all `pids` have exited, then once more; sums per workload.
std::map<std::string, uint64_t> drain_until_exit(CpuAccounting& accounting, std::vector<pid_t> pids,
                                                 std::chrono::milliseconds period, int* failures) {
  std::map<std::string, uint64_t> cpu;
  auto add = [&](const CpuTick& tick) {
    for (const auto& w : tick.workloads) cpu[w.id.workload] += w.cpu_ns;
  };
  auto next = std::chrono::steady_clock::now() + period;
  while (!pids.empty()) {
    for (auto it = pids.begin(); it != pids.end();) {
      int status = 0;
      if (waitpid(*it, &status, WNOHANG) == *it) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++*failures;
        it = pids.erase(it);
      } else {
        ++it;
      }
    }
    if (period.count() > 0 && std::chrono::steady_clock::now() >= next) {
      add(accounting.drain());
      next += period;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The parent is woken before an exiting child's final switch-out; let that land.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  add(accounting.drain());
  return cpu;
}

WorkloadResolver resolver_for(const std::vector<std::pair<const TestCgroup*, std::string>>& map) {
  std::map<uint64_t, std::string> names;
  for (const auto& [cgroup, name] : map) names[cgroup->id()] = name;
  return [names](uint64_t id) {
    auto it = names.find(id);
    return it != names.end() ? workload(it->second, "other") : workload("rest", "system");
  };
}

TEST(BpfAccountingKernel, LoadsPassingTheVerifier) {
  SKIP_WITHOUT_BPF();
  auto loaded = BpfAccounting::load(HostPaths{}, {}, [](uint64_t) { return WorkloadId{}; });
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  EXPECT_EQ((*loaded)->mode(), "bpf");
  BpfProgramStats stats = (*loaded)->sched_switch_stats();
  EXPECT_GT(stats.instructions, 10u);
  std::printf("sched_switch program: %llu instructions after verification\n",
              static_cast<unsigned long long>(stats.instructions));
  std::printf("%s", BpfAccounting::kernel_support_report(HostPaths{}).c_str());

  (void)(*loaded)->drain();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CpuTick tick = (*loaded)->drain();
  auto cpus = online_cpu_count(HostPaths{});
  ASSERT_TRUE(cpus.ok());
  // 200 ms × CPUs, give or take scheduling of this thread.
  EXPECT_NEAR(double(tick.capacity_ns), 0.2e9 * *cpus, 0.05e9 * *cpus);
  EXPECT_GT(tick.idle_ns + total_cpu(tick), 0u);
  EXPECT_LE(tick.idle_ns, tick.capacity_ns + 10'000'000u);
}

TEST(BpfAccountingKernel, TwoCgroupsAgreeWithCpuStatWithin2Percent) {
  SKIP_WITHOUT_BPF();
  auto root = cgroup2_root();
  if (!root) GTEST_SKIP() << "no cgroup v2 hierarchy (no cgroup.controllers under /sys/fs/cgroup)";
  TestCgroup a(*root, "a"), b(*root, "b");
  ASSERT_NE(a.id(), 0u) << a.path();
  ASSERT_NE(b.id(), 0u) << b.path();
  auto loaded = BpfAccounting::load(HostPaths{}, {}, resolver_for({{&a, "a"}, {&b, "b"}}));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();

  pid_t busy = start_tool(
      {"cpu_burner", "--busy-ratio", "0.75", "--seconds", "5", "--cgroup", a.path().string()},
      a.path());
  pid_t light = start_tool(
      {"cpu_burner", "--busy-ratio", "0.25", "--seconds", "5", "--cgroup", b.path().string()},
      b.path());
  int failures = 0;
  auto cpu = drain_until_exit(**loaded, {busy, light}, std::chrono::milliseconds(1000), &failures);
  ASSERT_EQ(failures, 0) << "cpu_burner failed (see its stderr)";

  for (auto [cgroup, name] : {std::pair<const TestCgroup*, const char*>{&a, "a"}, {&b, "b"}}) {
    double kernel = double(cgroup->usage_ns());
    double accounted = double(cpu[name]);
    ASSERT_GT(kernel, 0) << cgroup->path() / "cpu.stat";
    std::printf("cgroup %s: eBPF %.4f s, cpu.stat usage_usec %.4f s, difference %+.3f %%\n", name,
                accounted / 1e9, kernel / 1e9, 100 * (accounted - kernel) / kernel);
    EXPECT_NEAR(accounted, kernel, 0.02 * kernel) << name;
  }
  // 3:1 when the host has room; a saturated host shares its CPUs out evenly instead.
  std::printf("busy ratio a:b = %.2f\n",
              double(cpu["a"]) / double(std::max<uint64_t>(1, cpu["b"])));
}

TEST(BpfAccountingKernel, ShortLivedProcessesReachTheirCgroup) {
  SKIP_WITHOUT_BPF();
  auto root = cgroup2_root();
  if (!root) GTEST_SKIP() << "no cgroup v2 hierarchy (no cgroup.controllers under /sys/fs/cgroup)";
  TestCgroup c(*root, "short");
  auto loaded = BpfAccounting::load(HostPaths{}, {}, resolver_for({{&c, "short"}}));
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();

  pid_t spawner = start_tool({"cpu_burner", "--spawn", "2000", "--each-ms", "2", "--parallel", "2",
                              "--cgroup", c.path().string()},
                             c.path());
  int failures = 0;
  // Period 0: no drain until every child has exited, so all 2,000 live and die inside one tick.
  auto cpu = drain_until_exit(**loaded, {spawner}, std::chrono::milliseconds(0), &failures);
  ASSERT_EQ(failures, 0);
  double kernel = double(c.usage_ns());
  ASSERT_GT(kernel, 0);
  double percent = 100 * double(cpu["short"]) / kernel;
  std::printf("2,000 short-lived processes: eBPF %.4f s of cpu.stat %.4f s = %.2f %%\n",
              double(cpu["short"]) / 1e9, kernel / 1e9, percent);
  EXPECT_GE(percent, 99.0);
  EXPECT_LE(percent, 102.0);
}

TEST(BpfAccountingKernel, PerEventCostUnderContextSwitchStorm) {
  SKIP_WITHOUT_BPF();
  const fs::path knob = "/proc/sys/kernel/bpf_stats_enabled";
  auto before = read_text(knob);
  if (!before) GTEST_SKIP() << before.error().message();
  auto loaded = BpfAccounting::load(HostPaths{}, {}, [](uint64_t) { return WorkloadId{}; });
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  { std::ofstream(knob) << "1\n"; }
  BpfProgramStats start = (*loaded)->sched_switch_stats();

  int ping[2], pong[2];
  ASSERT_EQ(pipe(ping), 0);
  ASSERT_EQ(pipe(pong), 0);
  uint64_t round_trips = 0;
  std::thread echo([&] {
    char byte;
    while (read(ping[0], &byte, 1) == 1 && byte == 'p') (void)!write(pong[1], &byte, 1);
  });
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  char byte = 'p';
  while (std::chrono::steady_clock::now() < end) {
    if (write(ping[1], &byte, 1) != 1 || read(pong[0], &byte, 1) != 1) break;
    ++round_trips;
  }
  byte = 'q';
  (void)!write(ping[1], &byte, 1);
  echo.join();
  for (int fd : {ping[0], ping[1], pong[0], pong[1]}) close(fd);

  BpfProgramStats finish = (*loaded)->sched_switch_stats();
  { std::ofstream(knob) << *before; }
  uint64_t events = finish.run_count - start.run_count;
  ASSERT_GT(events, 0u);
  std::printf("context-switch storm: %llu round trips, %llu sched_switch events, %.1f ns/event\n",
              static_cast<unsigned long long>(round_trips), static_cast<unsigned long long>(events),
              double(finish.run_time_ns - start.run_time_ns) / double(events));
}

}  // namespace
}  // namespace wattprobe
