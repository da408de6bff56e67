#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/cpu/cpu_accounting.h"
#include "collectors/cpu/workload_table.h"
#include "collectors/identity/cgroup_resolver.h"

namespace wattprobe {

/// Per-workload CPU time from /proc when BPF cannot load (no root, no BTF, lockdown).
///
/// Each drain lists /proc/<pid>, reads utime+stime of each task group from /proc/<pid>/stat and
/// takes the difference to the previous drain; a task is pid + starttime, so a reused pid starts
/// from zero. A task first seen after the first drain counts all its time if it started after the
/// previous drain (give or take one clock tick); tasks already running at the first drain are
/// primed and count nothing. Identity: kernel threads (PF_KTHREAD) are {"kernel","kernel"}, the
/// others come from the "0::" line of /proc/<pid>/cgroup (the cpuacct line on pure v1 hosts),
/// read only for tasks that used CPU this drain. The agent must see the host's cgroup namespace,
/// else every path is "/".
///
/// Known limits (docs/metrics.md, invariant 3): a process that starts and exits between two drains
/// is invisible, and so is the time a process used between the previous drain and its exit (the
/// kernel adds it to the parent's cutime/cstime, which is not counted, to avoid double counting).
/// Times are in clock ticks (USER_HZ, usually 10 ms), so a drain is only as precise as that.
/// Tasks vanishing mid-read are normal, not errors. Not thread-safe.
class ProcfsAccounting : public CpuAccounting {
 public:
  struct Options {
    std::size_t max_workloads = 1024;
    bool per_process = false;  // fill CpuTick::processes
    /// CLOCK_BOOTTIME in ns: the clock of /proc/<pid>/stat's starttime. Tests substitute it.
    std::function<uint64_t()> boottime_ns;
    /// 0 = sysconf(_SC_CLK_TCK).
    uint64_t clock_ticks_per_second = 0;
  };

  ProcfsAccounting(HostPaths paths, Options options);

  std::string_view mode() const override { return "procfs"; }
  CpuTick drain() override;

  /// Problems of the last drain: unreadable /proc/stat, malformed /proc/<pid>/stat or cgroup
  /// lines (each names the file and what was found). Counted by the agent as collector errors.
  const std::vector<Error>& errors() const { return errors_; }

 private:
  struct Task {
    uint64_t start_ticks = 0;
    uint64_t cpu_ticks = 0;
    uint64_t seen_drain = 0;
    std::string cgroup;  // last path read, used when the task is gone before its cgroup is read
  };
  struct StatLine {
    std::string comm;
    uint64_t flags = 0;
    uint64_t cpu_ticks = 0;  // utime + stime
    uint64_t start_ticks = 0;
  };

  void read_node_stat(uint64_t now_ns, CpuTick& tick);
  /// nullopt: the task is gone (or its stat was malformed, then an error is recorded).
  /// A /proc/PID file's text; nullopt when the task is gone or the read failed (recorded).
  std::optional<std::string> read_pid_file(const std::filesystem::path& path,
                                           std::size_t max_bytes);
  std::optional<StatLine> read_stat(uint32_t pid);
  std::optional<std::string> read_cgroup(uint32_t pid);
  const WorkloadId& identity(const std::string& cgroup_path);

  HostPaths paths_;
  Options options_;
  uint64_t tick_ns_;  // ns per clock tick
  WorkloadTable table_;
  CgroupResolver resolver_;
  std::unordered_map<uint32_t, Task> tasks_;
  std::unordered_map<std::string, WorkloadId> identities_;  // cgroup path → identity, bounded
  std::vector<Error> errors_;
  uint64_t drains_ = 0;
  uint64_t prev_now_ns_ = 0;
  uint64_t prev_idle_ticks_ = 0;
  bool have_node_stat_ = false;
};

std::unique_ptr<CpuAccounting> make_procfs_accounting(const HostPaths& paths,
                                                      std::size_t max_workloads, bool per_process);

/// Parses one /proc/<pid>/stat line: comm sits in parentheses and may hold spaces and ')', so the
/// fields after it are found from the last ')'. Exposed for tests.
struct ProcStat {
  uint32_t pid = 0;
  std::string comm;
  char state = '?';
  uint64_t flags = 0;
  uint64_t utime = 0;  // clock ticks
  uint64_t stime = 0;
  uint64_t starttime = 0;  // clock ticks since boot
};
/// The cgroup path of a /proc/<pid>/cgroup text: the "0::" (v2) line's, else the v1 cpuacct
/// line's; nullopt when neither is there.
std::optional<std::string_view> cgroup_path_in_proc_cgroup(std::string_view text);

Result<ProcStat> parse_proc_stat(std::string_view line, const std::filesystem::path& path);

}  // namespace wattprobe
