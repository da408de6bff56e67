#include "agent/privileges.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

#include "agent/base/held_file.h"
#include "agent/base/text_file.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

constexpr uint64_t bit(int cap) { return uint64_t{1} << cap; }

// Dropping capabilities cannot be undone, so every drop happens in a forked child; the child
// reports back through a pipe as text and the parent asserts.
std::string in_child(const std::function<std::string()>& body) {
  int fds[2];
  if (pipe(fds) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string out = body();
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
      ssize_t n = write(fds[1], p, left);
      if (n <= 0) break;
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return out;
}

// The child's report: the drop's line (or error), then its /proc/self/status.
struct ChildReport {
  std::string line;
  std::string status;
  std::string probe;
};

ChildReport split(const std::string& out) {
  ChildReport r;
  auto a = out.find('\x1e');
  auto b = out.find('\x1e', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos) return {out, "", ""};
  r.line = out.substr(0, a);
  r.status = out.substr(a + 1, b - a - 1);
  r.probe = out.substr(b + 1);
  return r;
}

std::string status_field(const std::string& status, const std::string& key) {
  auto at = status.find("\n" + key + ":");
  if (at == std::string::npos) return "";
  auto value = status.substr(at + key.size() + 2);
  return std::string(trim(value.substr(0, value.find('\n'))));
}

std::string drop_and_report(
    const PrivilegePlan& plan, const std::function<std::string()>& probe = [] { return ""; }) {
  auto result = drop_privileges(plan);
  std::string line = result.ok() ? *result : "error: " + result.error().message();
  auto status = read_text("/proc/self/status");
  return line + '\x1e' + (status.ok() ? *status : "") + '\x1e' + probe();
}

bool can_create_bpf_map() {
  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_ARRAY;
  attr.key_size = 4;
  attr.value_size = 8;
  attr.max_entries = 1;
  int fd = static_cast<int>(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
  if (fd < 0) return false;
  close(fd);
  return true;
}

TEST(Privileges, OnlyTheEbpfAccountingMayKeepACapabilityAfterStartUp) {
  // Every source reads descriptors it opened before the drop, so none keeps a capability.
  EXPECT_EQ(capabilities_needed({"model"}, false), std::vector<int>{});
  EXPECT_EQ(capabilities_needed({"model"}, true), std::vector<int>{CAP_BPF});
  EXPECT_EQ(capabilities_needed({"rapl_powercap", "rapl_perf"}, true), std::vector<int>{CAP_BPF});
  EXPECT_EQ(capabilities_needed({"rapl_msr", "rapl_powercap"}, false), std::vector<int>{});
  EXPECT_EQ(capabilities_needed({"hwmon", "nvml", "no_such_source"}, false), std::vector<int>{});
  for (const auto& need : capability_table()) EXPECT_FALSE(need.why.empty()) << need.source;
}

TEST(Privileges, WorksWithoutLowersTheCapabilityForTheTrialOnlyThenRestoresIt) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to hold capabilities to lower";
  testing::TempTree tree;
  tree.write("energy_uj", "123\n");
  ASSERT_EQ(chown(tree.path("energy_uj").c_str(), 65534, 65534), 0);
  tree.chmod("energy_uj", std::filesystem::perms::owner_read);
  auto can_open = [&] {
    int fd = open(tree.path("energy_uj").c_str(), O_RDONLY);
    if (fd >= 0) close(fd);
    return fd >= 0;
  };
  auto out = in_child([&] {
    auto with_one_left = works_without({CAP_DAC_OVERRIDE}, can_open);
    auto with_none = works_without({CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH}, can_open);
    if (!with_one_left.ok() || !with_none.ok()) return std::string("error");
    return std::string(*with_one_left ? "opened" : "refused") + " " +
           (*with_none ? "opened" : "refused") + " " + (can_open() ? "restored" : "lost");
  });
  EXPECT_EQ(out, "opened refused restored");
}

TEST(Privileges, DefaultRunUserIsAnUnprivilegedAccountOnlyWhenStartedAsRoot) {
  const std::string user = default_run_user();
  if (geteuid() != 0) {
    EXPECT_EQ(user, "");
  } else {
    EXPECT_TRUE(user == "wattprobe" || user == "nobody") << user;
    auto identity = lookup_user(user);
    ASSERT_TRUE(identity.ok()) << identity.error().message();
    EXPECT_NE(identity->uid, 0u);
  }
  EXPECT_FALSE(lookup_user("no-such-user-wattprobe").ok());
  auto numeric = lookup_user("4242424");
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->uid, 4242424u);
}

TEST(Privileges, AFileHeldOpenFromBeforeTheDropIsStillReadAsNobodyWithNoCapability) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  testing::TempTree tree;
  tree.write("energy_uj", "123\n");
  tree.chmod("energy_uj", std::filesystem::perms::owner_read);  // root-owned 0400, like sysfs
  auto held = HeldFile::open(tree.path("energy_uj"));
  ASSERT_TRUE(held.ok()) << held.error().message();
  auto report = split(in_child([&] {
    return drop_and_report({{}, "nobody"}, [&] {
      auto reopened = read_text(tree.path("energy_uj"));
      auto text = held->read();
      return std::string(reopened.ok() ? "reopened" : "reopen-denied") + " " +
             (text.ok() ? std::string(trim(*text)) : text.error().message());
    });
  }));
  EXPECT_EQ(report.line, "kept: none; dropped all others; user: nobody");
  EXPECT_EQ(report.probe, "reopen-denied 123");
}

TEST(Privileges, NamesCapabilitiesTheWayCapabilities7Does) {
  EXPECT_EQ(capability_names(bit(CAP_BPF) | bit(CAP_PERFMON)), "cap_perfmon,cap_bpf");
  EXPECT_EQ(capability_names(0), "none");
  EXPECT_EQ(capability_name(CAP_DAC_READ_SEARCH), "cap_dac_read_search");
  EXPECT_EQ(capability_name(CAP_SYS_RAWIO), "cap_sys_rawio");
  EXPECT_EQ(capability_name(CAP_CHECKPOINT_RESTORE), "cap_checkpoint_restore");
  EXPECT_EQ(capability_name(62), "cap_62");
}

TEST(Privileges, ParsesProcStatusCapabilityLines) {
  const std::string status =
      "Name:\twattprobe\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\n"
      "CapPrm:\t000000c000000000\nCapEff:\t000000c000000000\nCapBnd:\t000001ffffffffff\n"
      "CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n";
  auto sets = parse_capability_sets(status, "/proc/42/status");
  ASSERT_TRUE(sets.ok()) << sets.error().message();
  EXPECT_EQ(sets->effective, bit(CAP_BPF) | bit(CAP_PERFMON));
  EXPECT_EQ(sets->permitted, bit(CAP_BPF) | bit(CAP_PERFMON));
  EXPECT_EQ(sets->bounding, 0x1ffffffffffULL);
  EXPECT_EQ(sets->inheritable, 0u);
}

TEST(Privileges, MalformedStatusNamesThePathAndTheLine) {
  auto missing = parse_capability_sets("Name:\tx\nCapInh:\t0\n", "/proc/42/status");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::malformed);
  EXPECT_NE(missing.error().message().find("/proc/42/status"), std::string::npos);
  EXPECT_NE(missing.error().message().find("CapPrm"), std::string::npos);

  auto garbage = parse_capability_sets(
      "CapInh:\t0\nCapPrm:\tzz\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n", "/proc/42/status");
  ASSERT_FALSE(garbage.ok());
  EXPECT_EQ(garbage.error().kind, ErrorKind::malformed);
}

TEST(Privileges, CurrentCapabilitiesNamesTheEffectiveAndBoundingSets) {
  std::string now = current_capabilities();
  EXPECT_EQ(now.rfind("effective: ", 0), 0u) << now;
  EXPECT_NE(now.find("; bounding: "), std::string::npos) << now;
}

TEST(Privileges, RootDropsToBpfAndPerfmonEverywhereIncludingTheBoundingSet) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to hold capabilities to drop";
  const bool bpf_works_before = can_create_bpf_map();
  testing::TempTree tree;
  tree.write("energy_uj", "123\n");
  // Owned by nobody with mode 0400: only CAP_DAC_OVERRIDE/READ_SEARCH let root read it.
  ASSERT_EQ(chown(tree.path("energy_uj").c_str(), 65534, 65534), 0);
  tree.chmod("energy_uj", std::filesystem::perms::owner_read);

  auto report = split(in_child([&] {
    return drop_and_report({{CAP_BPF, CAP_PERFMON}, ""}, [&] {
      int fd = open(tree.path("energy_uj").c_str(), O_RDONLY);
      std::string read_result = fd >= 0 ? "read" : "denied";
      if (fd >= 0) close(fd);
      return read_result + (can_create_bpf_map() ? " bpf" : " nobpf");
    });
  }));

  EXPECT_EQ(report.line, "kept: cap_perfmon,cap_bpf; dropped all others; user: root (unchanged)");
  auto sets = parse_capability_sets(report.status, "/proc/self/status");
  ASSERT_TRUE(sets.ok()) << sets.error().message() << "\n" << report.line;
  EXPECT_EQ(sets->effective, bit(CAP_BPF) | bit(CAP_PERFMON));
  EXPECT_EQ(sets->permitted, bit(CAP_BPF) | bit(CAP_PERFMON));
  EXPECT_EQ(sets->bounding, bit(CAP_BPF) | bit(CAP_PERFMON));
  EXPECT_EQ(sets->inheritable, 0u);
  EXPECT_EQ(sets->ambient, 0u);
  EXPECT_EQ(status_field(report.status, "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(report.status, "Uid"), "0\t0\t0\t0");
  EXPECT_EQ(report.probe.substr(0, report.probe.find(' ')), "denied")
      << "CAP_DAC_OVERRIDE must be gone";
  if (bpf_works_before) {
    EXPECT_NE(report.probe.find(" bpf"), std::string::npos) << "the kept CAP_BPF must still work";
  }
}

TEST(Privileges, SwitchesToNobodyAndKeepsTheKeptCapabilitiesEffective) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  testing::TempTree tree;
  tree.write("energy_uj", "123\n");
  tree.chmod("energy_uj", std::filesystem::perms::owner_read);  // root-owned 0400, like sysfs

  auto report = split(in_child([&] {
    return drop_and_report({{CAP_BPF, CAP_PERFMON, CAP_DAC_READ_SEARCH}, "nobody"}, [&] {
      int fd = open(tree.path("energy_uj").c_str(), O_RDONLY);
      std::string read_result = fd >= 0 ? "read" : "denied";
      if (fd >= 0) close(fd);
      int wfd = open(tree.path("energy_uj").c_str(), O_WRONLY);
      if (wfd >= 0) close(wfd);
      return read_result + (wfd >= 0 ? " written" : " write-denied");
    });
  }));

  EXPECT_EQ(report.line,
            "kept: cap_dac_read_search,cap_perfmon,cap_bpf; dropped all others; user: nobody");
  auto sets = parse_capability_sets(report.status, "/proc/self/status");
  ASSERT_TRUE(sets.ok()) << sets.error().message() << "\n" << report.line;
  const uint64_t kept = bit(CAP_BPF) | bit(CAP_PERFMON) | bit(CAP_DAC_READ_SEARCH);
  EXPECT_EQ(sets->effective, kept);
  EXPECT_EQ(sets->permitted, kept);
  EXPECT_EQ(sets->bounding, kept);
  EXPECT_EQ(status_field(report.status, "Uid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(report.status, "Gid"), "65534\t65534\t65534\t65534");
  EXPECT_EQ(status_field(report.status, "NoNewPrivs"), "1");
  EXPECT_EQ(report.probe, "read write-denied");
}

TEST(Privileges, KeepingNothingAsNobodyLeavesNoCapabilityAtAll) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  auto report = split(in_child([] { return drop_and_report({{}, "65534"}); }));
  EXPECT_EQ(report.line, "kept: none; dropped all others; user: nobody");
  auto sets = parse_capability_sets(report.status, "/proc/self/status");
  ASSERT_TRUE(sets.ok()) << report.line;
  EXPECT_EQ(sets->effective | sets->permitted | sets->bounding | sets->ambient, 0u);
}

TEST(Privileges, RefusesOnceAThreadIsRunningBecauseCapabilitiesArePerThread) {
  auto out = in_child([] {
    int fds[2];
    if (pipe(fds) != 0) return std::string("pipe failed");
    std::thread sleeper([&] {
      char c;
      (void)!read(fds[0], &c, 1);
    });
    auto result = drop_privileges({{CAP_BPF}, ""});
    (void)!write(fds[1], "x", 1);
    sleeper.join();
    return result.ok() ? "dropped: " + *result
                       : std::string(to_string(result.error().kind)) + ": " + result.error().detail;
  });
  EXPECT_EQ(out.rfind("unsupported: ", 0), 0u) << out;
  EXPECT_NE(out.find("2 threads"), std::string::npos) << out;
}

TEST(Privileges, UnknownUserIsAbsentAndChangesNothing) {
  auto out = in_child([] {
    auto result = drop_privileges({{CAP_BPF}, "no-such-user-wattprobe"});
    auto sets = read_capability_sets("/proc/self/status");
    std::string verdict = result.ok() ? "dropped" : std::string(to_string(result.error().kind));
    return verdict + " " + (sets.ok() ? capability_names(sets->effective) : "?");
  });
  EXPECT_EQ(out.rfind("absent ", 0), 0u) << out;
  EXPECT_EQ(out.substr(out.find(' ') + 1),
            capability_names(read_capability_sets("/proc/self/status")->effective));
}

TEST(Privileges, CapabilityNumberBeyondTheKernelIsRejected) {
  auto out = in_child([] {
    auto result = drop_privileges({{63}, ""});
    return result.ok() ? std::string("dropped") : std::string(to_string(result.error().kind));
  });
  EXPECT_EQ(out, "unsupported");
}

}  // namespace
}  // namespace wattprobe
