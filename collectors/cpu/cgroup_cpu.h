#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// One cgroup v2 in a reading of the whole tree: its CPU time and that of all its descendants,
/// cumulative, as its cpu.stat usage_usec gives it (the kernel's rstat, in ns).
struct CgroupTime {
  uint64_t id = 0;         // kernfs node id, the cgroup folder's inode number
  uint64_t parent_id = 0;  // 0 for the top of the reading
  uint64_t usage_ns = 0;
};

/// Everything one drain reads: the whole tree at one instant, and the host's idle time.
struct CgroupTreeReading {
  std::vector<CgroupTime> cgroups;  // the top (parent_id 0) and every descendant
  uint64_t idle_ns = 0;             // cumulative idle + iowait over CPUs (/proc/stat)
  bool idle_known = false;
  unsigned online_cpus = 1;
  uint64_t monotonic_ns = 0;
  uint64_t cgroups_lost = 0;  // cumulative: cgroups the reader had no room for
};

/// Turns successive readings of the cgroup tree into per-workload CPU time for one tick.
///
/// A cgroup's own time in a tick is the growth of its usage minus the growth of its children's:
/// cpu.stat counts a cgroup's descendants, and tasks of a cgroup are charged to it alone. The
/// kernel keeps this time for every task, short-lived or not, so nothing that ran is missed:
/// - a cgroup created and removed between two readings leaves its time in its parent's usage,
///   which then counts as the parent's own;
/// - a cgroup removed since the last reading keeps the time it used before it; what it used
///   after the last reading stays in its parent's growth (at most one tick of its work).
/// Kernel threads live in the root cgroup and count as its own time.
///
/// A workload ends when the last cgroup that gave it CPU time is gone from a reading and the
/// cgroup's parent, if still there, is another workload's (a service's sub-cgroup going away
/// leaves the service running). Not thread-safe.
class CgroupCpuDrain {
 public:
  using Resolver = std::function<WorkloadId(uint64_t cgroup_id)>;

  CgroupCpuDrain(std::size_t max_workloads, Resolver resolve);

  /// The first call primes and returns an empty tick.
  CpuTick drain(const CgroupTreeReading& reading);

 private:
  const WorkloadId& workload_of(uint64_t cgroup_id);

  std::size_t max_workloads_;
  Resolver resolve_;
  bool primed_ = false;
  uint64_t last_monotonic_ns_ = 0;
  uint64_t last_idle_ns_ = 0;
  bool last_idle_known_ = false;
  uint64_t last_lost_ = 0;
  std::unordered_map<uint64_t, uint64_t> last_usage_;  // cgroups of the last reading
  std::unordered_map<uint64_t, uint64_t>
      shortfall_;  // own time owed, of cgroups behind their children
  // Identities of the cgroups of the last reading: a cgroup id is never reused, so an answer
  // stays right while the cgroup lives.
  std::unordered_map<uint64_t, WorkloadId> identities_;
  std::unordered_map<uint64_t, WorkloadId> identities_next_;
  /// Every cgroup of the last reading that ever had CPU time: its workload and parent, to tell
  /// when the last of a workload's cgroups is removed.
  struct Live {
    WorkloadId id;
    uint64_t parent_id = 0;
  };
  std::unordered_map<uint64_t, Live> live_;
  std::unordered_map<WorkloadId, std::size_t, WorkloadIdHash> live_cgroups_;  // per workload
};

}  // namespace wattprobe
