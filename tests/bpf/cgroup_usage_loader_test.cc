#include "bpf/cgroup_usage_loader.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;

TEST(ParseCpuStatUsage, ReadsUsageUsecInNanoseconds) {
  auto ns = parse_cpu_stat_usage(
      "usage_usec 11554658031\nuser_usec 9914424388\nsystem_usec 1640233642\n", "/x/cpu.stat");
  ASSERT_TRUE(ns.ok()) << ns.error().message();
  EXPECT_EQ(*ns, 11554658031000ull);
}

TEST(ParseCpuStatUsage, RefusesAMissingOrMalformedLineNamingTheFile) {
  auto none = parse_cpu_stat_usage("user_usec 1\n", "/x/cpu.stat");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message().find("/x/cpu.stat"), std::string::npos);
  EXPECT_NE(none.error().message().find("no usage_usec"), std::string::npos);
  auto word = parse_cpu_stat_usage("usage_usec lots\n", "/x/cpu.stat");
  ASSERT_FALSE(word.ok());
  EXPECT_NE(word.error().message().find("lots"), std::string::npos);
  EXPECT_FALSE(parse_cpu_stat_usage("usage_usec 99999999999999999999\n", "/x/cpu.stat").ok());
}

// Readings in order; the call numbered `fail_at` (from 0) fails instead.
class ScriptedReader : public CgroupTreeReader {
 public:
  std::vector<CgroupTreeReading> readings;
  std::size_t fail_at = static_cast<std::size_t>(-1);
  Result<CgroupTreeReading> read() override {
    if (calls_++ == fail_at) return Error{ErrorKind::transient, "bpf/cgroup_usage.bpf.c", "EAGAIN"};
    return readings.at(next_++);
  }

 private:
  std::size_t calls_ = 0;
  std::size_t next_ = 0;
};

CgroupTreeReading reading(uint64_t t_ms, uint64_t root_ms, uint64_t a_ms) {
  CgroupTreeReading r;
  r.cgroups = {{1, 0, root_ms * 1'000'000}, {7, 1, a_ms * 1'000'000}};
  r.monotonic_ns = t_ms * 1'000'000;
  r.online_cpus = 1;
  return r;
}

TEST(CgroupAccounting, AFailedReadGivesAnEmptyTickAndTheNextCountsFromTheLastGoodOne) {
  auto reader = std::make_unique<ScriptedReader>();
  reader->readings = {reading(0, 0, 0), reading(2000, 100, 300)};
  reader->fail_at = 1;
  CgroupAccounting accounting(std::move(reader), CgroupCpuDrain(10, [](uint64_t id) {
                                WorkloadId w;
                                w.workload = "cg" + std::to_string(id);
                                return w;
                              }));
  EXPECT_EQ(accounting.mode(), "cgroup");
  (void)accounting.drain();
  CpuTick failed = accounting.drain();
  EXPECT_TRUE(failed.workloads.empty());
  ASSERT_TRUE(accounting.last_error().has_value());
  EXPECT_NE(accounting.last_error()->message().find("EAGAIN"), std::string::npos);
  CpuTick tick = accounting.drain();
  EXPECT_FALSE(accounting.last_error().has_value());
  ASSERT_EQ(tick.workloads.size(), 1u);  // the root's 100 ms are all its child's
  EXPECT_EQ(tick.workloads[0].id.workload, "cg7");
  EXPECT_EQ(tick.workloads[0].cpu_ns, 300'000'000u);
  EXPECT_EQ(tick.capacity_ns, 2'000'000'000u);
}

// ---- The real kernel: root, BTF and a cgroup v2 tree, or skipped with the reason. ----

std::optional<fs::path> cgroup2_root() {
  for (const char* dir : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"})
    if (fs::exists(fs::path(dir) / "cgroup.controllers")) return fs::path(dir);
  return std::nullopt;
}

std::optional<std::string> why_not() {
  if (geteuid() != 0)
    return "needs root to load eBPF programs (euid " + std::to_string(geteuid()) + ")";
  if (!fs::exists("/sys/kernel/btf/vmlinux"))
    return "kernel has no BTF (/sys/kernel/btf/vmlinux): CO-RE programs cannot load";
  if (!cgroup2_root()) return "no cgroup v2 hierarchy (no cgroup.controllers under /sys/fs/cgroup)";
  return std::nullopt;
}

class TestCgroup {
 public:
  TestCgroup(const fs::path& root, const std::string& name)
      : path_(root / ("wattprobe-test-" + std::to_string(getpid()) + "-" + name)) {
    fs::create_directory(path_);
    struct stat st {};
    if (stat(path_.c_str(), &st) == 0) id_ = st.st_ino;
  }
  ~TestCgroup() {
    for (int i = 0; i < 100 && rmdir(path_.c_str()) != 0 && errno == EBUSY; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const fs::path& path() const { return path_; }
  uint64_t id() const { return id_; }
  uint64_t usage_ns() const {
    auto text = read_text(path_ / "cpu.stat");
    if (!text) return 0;
    auto ns = parse_cpu_stat_usage(*text, (path_ / "cpu.stat").string());
    return ns ? *ns : 0;
  }

 private:
  fs::path path_;
  uint64_t id_ = 0;
};

pid_t start_tool(std::vector<std::string> args, const fs::path& cgroup) {
  std::string tool = std::string(WATTPROBE_TOOLS_DIR) + "/" + args[0];
  std::string procs = (cgroup / "cgroup.procs").string();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
    std::string self = std::to_string(getpid());
    if (fd < 0 || write(fd, self.data(), self.size()) < 0) _exit(126);
    close(fd);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(tool.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

CgroupCpuDrain::Resolver by_id() {
  return [](uint64_t id) {
    WorkloadId w;
    w.workload = std::to_string(id);
    w.kind = "other";
    return w;
  };
}

// Drains every `period` (0: only at the end) until every pid has exited, then once more.
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
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  add(accounting.drain());
  return cpu;
}

#define SKIP_WITHOUT_KERNEL()                             \
  do {                                                    \
    if (auto reason = why_not()) GTEST_SKIP() << *reason; \
  } while (0)

TEST(CgroupAccountingKernel, LoadsAndReadsEveryCgroupOfTheTree) {
  SKIP_WITHOUT_KERNEL();
  TestCgroup a(*cgroup2_root(), "tree");
  auto loaded = CgroupAccounting::load(HostPaths{}, {}, by_id());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();  // primes
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CpuTick tick = (*loaded)->drain();
  ASSERT_FALSE((*loaded)->last_error().has_value()) << (*loaded)->last_error()->message();
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_NEAR(double(tick.capacity_ns), 0.2e9 * double(cpus), 0.05e9 * double(cpus));
  uint64_t busy = 0;
  for (const auto& w : tick.workloads) busy += w.cpu_ns;
  // Busy time by cgroup plus idle fill the CPUs, give or take /proc/stat's 10 ms ticks.
  std::printf("200 ms: busy %.1f ms by cgroup, idle %.1f ms, capacity %.1f ms\n", busy / 1e6,
              tick.idle_ns / 1e6, tick.capacity_ns / 1e6);
  EXPECT_LE(busy, tick.capacity_ns + 30'000'000u);
}

TEST(CgroupAccountingKernel, TwoCgroupsAgreeWithCpuStatWithin1Percent) {
  SKIP_WITHOUT_KERNEL();
  TestCgroup a(*cgroup2_root(), "a"), b(*cgroup2_root(), "b");
  auto loaded = CgroupAccounting::load(HostPaths{}, {}, by_id());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();  // primes
  pid_t busy = start_tool(
      {"cpu_burner", "--busy-ratio", "0.75", "--seconds", "4", "--cgroup", a.path().string()},
      a.path());
  pid_t light = start_tool(
      {"cpu_burner", "--busy-ratio", "0.25", "--seconds", "4", "--cgroup", b.path().string()},
      b.path());
  int failures = 0;
  auto cpu = drain_until_exit(**loaded, {busy, light}, std::chrono::milliseconds(1000), &failures);
  ASSERT_EQ(failures, 0) << "cpu_burner failed (see its stderr)";
  for (const TestCgroup* c : {&a, &b}) {
    double kernel = double(c->usage_ns());
    double accounted = double(cpu[std::to_string(c->id())]);
    ASSERT_GT(kernel, 0) << c->path() / "cpu.stat";
    std::printf("%s: cgroup mode %.4f s, cpu.stat usage_usec %.4f s, difference %+.3f %%\n",
                c->path().filename().c_str(), accounted / 1e9, kernel / 1e9,
                100 * (accounted - kernel) / kernel);
    EXPECT_NEAR(accounted, kernel, 0.01 * kernel) << c->path();
  }
}

// The agent maps only the array's pages a walk fills (170 slots a page): cgroups made after the
// load, past the first page, are read once a walk reaches them.
TEST(CgroupAccountingKernel, CgroupsPastTheFirstMappedPageAreRead) {
  SKIP_WITHOUT_KERNEL();
  auto loaded = CgroupAccounting::load(HostPaths{}, {}, by_id());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();  // primes, with this host's cgroups mapped
  std::vector<std::unique_ptr<TestCgroup>> empty;
  for (int i = 0; i < 400; ++i)
    empty.push_back(std::make_unique<TestCgroup>(*cgroup2_root(), "page" + std::to_string(i)));
  TestCgroup last(*cgroup2_root(), "last");
  pid_t busy = start_tool(
      {"cpu_burner", "--busy-ratio", "0.5", "--seconds", "1", "--cgroup", last.path().string()},
      last.path());
  int failures = 0;
  auto cpu = drain_until_exit(**loaded, {busy}, std::chrono::milliseconds(300), &failures);
  ASSERT_EQ(failures, 0) << "cpu_burner failed (see its stderr)";
  ASSERT_FALSE((*loaded)->last_error().has_value()) << (*loaded)->last_error()->message();
  double kernel = double(last.usage_ns());
  double accounted = double(cpu[std::to_string(last.id())]);
  ASSERT_GT(kernel, 0) << last.path() / "cpu.stat";
  std::printf("after 400 more cgroups: cgroup mode %.4f s, cpu.stat %.4f s\n", accounted / 1e9,
              kernel / 1e9);
  EXPECT_NEAR(accounted, kernel, 0.01 * kernel);
}

TEST(CgroupAccountingKernel, ShortLivedProcessesReachTheirCgroup) {
  SKIP_WITHOUT_KERNEL();
  TestCgroup c(*cgroup2_root(), "short");
  auto loaded = CgroupAccounting::load(HostPaths{}, {}, by_id());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();  // primes
  pid_t spawner = start_tool({"cpu_burner", "--spawn", "2000", "--each-ms", "2", "--parallel", "2",
                              "--cgroup", c.path().string()},
                             c.path());
  int failures = 0;
  // No drain until every child has exited: all 2,000 live and die inside one tick.
  auto cpu = drain_until_exit(**loaded, {spawner}, std::chrono::milliseconds(0), &failures);
  ASSERT_EQ(failures, 0);
  double kernel = double(c.usage_ns());
  ASSERT_GT(kernel, 0);
  double percent = 100 * double(cpu[std::to_string(c.id())]) / kernel;
  std::printf("2,000 short-lived processes: cgroup mode %.4f s of cpu.stat %.4f s = %.2f %%\n",
              double(cpu[std::to_string(c.id())]) / 1e9, kernel / 1e9, percent);
  EXPECT_GE(percent, 99.0);
  EXPECT_LE(percent, 101.0);
}

double cpu_us_per(int times, const std::function<void()>& work) {
  timespec t0{}, t1{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
  for (int i = 0; i < times; ++i) work();
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
  return ((t1.tv_sec - t0.tv_sec) * 1e9 + double(t1.tv_nsec - t0.tv_nsec)) / 1e3 / times;
}

// The figure beside issue 18's: a drain through the iterator against pread of every cgroup's
// cpu.stat on held fds (the other way to read the same counts), on this host's tree plus 1,000.
TEST(CgroupAccountingKernel, ReadCostPerTickFigure) {
  SKIP_WITHOUT_KERNEL();
  std::vector<std::unique_ptr<TestCgroup>> many;
  for (int i = 0; i < 1000; ++i)
    many.push_back(std::make_unique<TestCgroup>(*cgroup2_root(), "n" + std::to_string(i)));
  auto loaded = CgroupAccounting::load(HostPaths{}, {}, by_id());
  ASSERT_TRUE(loaded.ok()) << loaded.error().message();
  (void)(*loaded)->drain();  // primes
  std::vector<int> fds;
  for (const auto& e : fs::recursive_directory_iterator(*cgroup2_root())) {
    std::error_code ec;
    if (!e.is_directory(ec)) continue;
    int fd = open((e.path() / "cpu.stat").c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) fds.push_back(fd);
  }
  std::size_t cgroups = fds.size() + 1;
  double drain_us = cpu_us_per(100, [&] { (void)(*loaded)->drain(); });
  EXPECT_FALSE((*loaded)->last_error().has_value());
  double pread_us = cpu_us_per(20, [&] {
    char buf[512];
    for (int fd : fds) (void)!pread(fd, buf, sizeof buf, 0);
  });
  for (int fd : fds) close(fd);
  std::printf(
      "%zu cgroups: a cgroup-mode drain costs %.0f us CPU (%.2f us per cgroup); pread of "
      "every cpu.stat on held fds costs %.0f us (%.2f us per cgroup)\n",
      cgroups, drain_us, drain_us / double(cgroups), pread_us, pread_us / double(cgroups));
}

}  // namespace
}  // namespace wattprobe
