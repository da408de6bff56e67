#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// One `cpu` line of /proc/stat, in USER_HZ ticks (sysconf(_SC_CLK_TCK), 100 on every mainstream
/// kernel build). See proc_stat(5).
struct CpuTimes {
  uint64_t user = 0;
  uint64_t nice = 0;
  uint64_t system = 0;
  uint64_t idle = 0;
  uint64_t iowait = 0;
  uint64_t irq = 0;
  uint64_t softirq = 0;
  uint64_t steal = 0;
  uint64_t guest = 0;
  uint64_t guest_nice = 0;

  /// Time this CPU ran something of ours: user + nice + system + irq + softirq.
  /// guest and guest_nice are left out because the kernel already adds them to user and nice
  /// (account_guest_time() in kernel/sched/cputime.c); counting them again would give a host
  /// running VMs more than 100 %. steal is left out too: it is time the hypervisor gave another
  /// guest, whose energy is not ours.
  uint64_t busy() const;
  /// Every tick of wall time on this CPU: busy + idle + iowait + steal (guest excluded, as above).
  uint64_t total() const;
};

struct PerCpuTimes {
  int cpu = 0;  // N of the `cpuN` line
  CpuTimes times;
};

/// The CPU lines of /proc/stat. (ProcStat is taken: procfs_accounting.h uses it for
/// /proc/<pid>/stat.)
struct CpuStat {
  /// The `cpu` line: the sum over every possible CPU, so it keeps growing across CPU hotplug.
  CpuTimes aggregate;
  /// One entry per `cpuN` line, in file order. The kernel prints online CPUs only.
  std::vector<PerCpuTimes> per_cpu;
  int online_cpus() const { return static_cast<int>(per_cpu.size()); }
};

/// Parses the text of /proc/stat. At least the aggregate line and one cpuN line are required. Lines
/// other than `cpu`/`cpuN` are ignored. A `cpu` line needs at least the 4 columns of the oldest
/// kernels (user nice system idle); columns the kernel does not print are 0, and columns past
/// guest_nice (a future kernel) are checked to be numbers and otherwise ignored. Anything else — a
/// missing or repeated aggregate line, a word where a number goes, an overflowing value — is
/// malformed, and the error names `path` and the line.
Result<CpuStat> parse_cpu_stat(std::string_view text, const std::filesystem::path& path);

/// Reads and parses <procfs_root>/proc/stat.
Result<CpuStat> read_proc_stat(const HostPaths& paths);

}  // namespace wattprobe
