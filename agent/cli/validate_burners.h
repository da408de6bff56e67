#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// Transient cgroups (v2) that `wattprobe validate` makes for its own load, under one parent
/// named for this process, so each burner is a workload of a name it knows. Removed on
/// destruction, once their processes have gone.
class ValidateCgroups {
 public:
  /// Creates <cgroup2 root>/wattprobe-validate-<pid>/<name> for each name. The cgroup2 root is
  /// found under `paths` (sys/fs/cgroup or sys/fs/cgroup/unified).
  static Result<ValidateCgroups> create(const HostPaths& paths,
                                        const std::vector<std::string>& names);
  ValidateCgroups(ValidateCgroups&&) noexcept;
  ValidateCgroups& operator=(ValidateCgroups&&) = delete;
  ~ValidateCgroups();

  std::filesystem::path path(const std::string& name) const;
  /// The kernel's own count of the cgroup's CPU time (cpu.stat usage_usec), in seconds.
  Result<double> usage_seconds(const std::string& name) const;

 private:
  ValidateCgroups() = default;
  std::filesystem::path base_;
  std::vector<std::string> names_;
};

/// A child process that joins `cgroup` and, for `seconds` of wall time, burns `busy_ratio` of
/// every 100 ms in CPU time (measured as CPU time, so the ratio holds on a loaded host). The
/// child only makes system calls: it is forked from a process with threads.
Result<pid_t> start_duty_burner(const std::filesystem::path& cgroup, double busy_ratio,
                                double seconds);

/// A child process that joins `cgroup` and forks `count` children one after another, each
/// burning `each_ms` of CPU and exiting: thousands of processes shorter than a tick.
Result<pid_t> start_spawner(const std::filesystem::path& cgroup, long count, double each_ms);

/// Waits for a child started above; true when it exited with 0.
bool wait_child(pid_t pid);

}  // namespace wattprobe
