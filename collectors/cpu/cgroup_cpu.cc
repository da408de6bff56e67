#include "collectors/cpu/cgroup_cpu.h"

#include <algorithm>
#include <utility>

namespace wattprobe {

CgroupCpuDrain::CgroupCpuDrain(std::size_t max_workloads, Resolver resolve)
    : max_workloads_(max_workloads), resolve_(std::move(resolve)) {}

const WorkloadId& CgroupCpuDrain::workload_of(uint64_t cgroup_id) {
  if (auto it = identities_next_.find(cgroup_id); it != identities_next_.end()) return it->second;
  if (auto it = identities_.find(cgroup_id); it != identities_.end())
    return identities_next_.emplace(cgroup_id, std::move(it->second)).first->second;
  return identities_next_.emplace(cgroup_id, resolve_(cgroup_id)).first->second;
}

CpuTick CgroupCpuDrain::drain(const CgroupTreeReading& reading) {
  CpuTick tick;
  auto grown = [](uint64_t now, uint64_t before) { return now >= before ? now - before : 0; };

  // Growth of each cgroup since the last reading; a cgroup new since then grew from zero.
  std::unordered_map<uint64_t, uint64_t> next_usage;
  next_usage.reserve(reading.cgroups.size());
  std::vector<uint64_t> growth(reading.cgroups.size());
  std::unordered_map<uint64_t, std::size_t> index_of;
  index_of.reserve(reading.cgroups.size());
  for (std::size_t i = 0; i < reading.cgroups.size(); ++i) {
    const CgroupTime& c = reading.cgroups[i];
    next_usage[c.id] = c.usage_ns;
    index_of[c.id] = i;
    auto it = last_usage_.find(c.id);
    growth[i] = it == last_usage_.end() ? c.usage_ns : grown(c.usage_ns, it->second);
  }

  if (primed_) {
    tick.capacity_ns =
        uint64_t{reading.online_cpus} * grown(reading.monotonic_ns, last_monotonic_ns_);
    if (reading.idle_known && last_idle_known_)
      tick.idle_ns = grown(reading.idle_ns, last_idle_ns_);
    tick.records_lost = grown(reading.cgroups_lost, last_lost_);

    // A parent's own time: its growth less its children's. It comes out below zero when the
    // parent's count lags its children's: the root's (kcpustat, sampled at the scheduler tick)
    // against their exact runtimes, or any parent read just before a concurrent flush reached it.
    // The shortfall is carried to the parent's next ticks rather than dropped, so its total
    // stays exact instead of drifting up by every dropped shortfall.
    std::vector<uint64_t> own(reading.cgroups.size());
    std::vector<uint64_t> children(reading.cgroups.size());
    for (std::size_t i = 0; i < reading.cgroups.size(); ++i) {
      auto parent = index_of.find(reading.cgroups[i].parent_id);
      if (reading.cgroups[i].parent_id != 0 && parent != index_of.end())
        children[parent->second] += growth[i];
    }
    std::unordered_map<uint64_t, uint64_t> next_shortfall;
    for (std::size_t i = 0; i < reading.cgroups.size(); ++i) {
      uint64_t owed = children[i];
      if (auto it = shortfall_.find(reading.cgroups[i].id); it != shortfall_.end())
        owed += it->second;
      if (growth[i] >= owed) {
        own[i] = growth[i] - owed;
      } else {
        // At most a tick of its children's growth: steal time, which kcpustat leaves out and
        // runtimes keep, would otherwise pile up without end.
        next_shortfall[reading.cgroups[i].id] = std::min(owed - growth[i], children[i]);
      }
    }
    shortfall_ = std::move(next_shortfall);
    std::unordered_map<WorkloadId, std::size_t, WorkloadIdHash> index;  // cgroups → one workload
    for (std::size_t i = 0; i < reading.cgroups.size(); ++i) {
      if (own[i] == 0) continue;
      const WorkloadId& id = workload_of(reading.cgroups[i].id);
      if (auto [at, added] = live_.try_emplace(reading.cgroups[i].id); added) {
        at->second = Live{id, reading.cgroups[i].parent_id};
        ++live_cgroups_[id];
      }
      auto [at, added] = index.try_emplace(id, tick.workloads.size());
      if (added) tick.workloads.push_back(WorkloadCpu{.id = id});
      tick.workloads[at->second].cpu_ns += own[i];
    }
    // Past the cap the biggest users are kept, as in bpf mode, so the remainder is smallest.
    if (tick.workloads.size() > max_workloads_) {
      std::sort(tick.workloads.begin(), tick.workloads.end(),
                [](const WorkloadCpu& a, const WorkloadCpu& b) { return a.cpu_ns > b.cpu_ns; });
      for (std::size_t i = max_workloads_; i < tick.workloads.size(); ++i)
        tick.unaccounted_ns += tick.workloads[i].cpu_ns;
      tick.workloads_dropped = tick.workloads.size() - max_workloads_;
      tick.workloads.resize(max_workloads_);
    }

    // A reading that lost cgroups (the kernel's array was full) cannot tell a removed cgroup
    // from one it had no room for: removals wait for a whole reading.
    if (grown(reading.cgroups_lost, last_lost_) == 0) {
      std::vector<std::pair<uint64_t, WorkloadId>> continued;  // through a parent
      for (auto it = live_.begin(); it != live_.end();) {
        if (index_of.count(it->first)) {
          ++it;
          continue;
        }
        const WorkloadId id = std::move(it->second.id);
        const uint64_t parent = it->second.parent_id;
        it = live_.erase(it);
        auto count = live_cgroups_.find(id);
        if (count == live_cgroups_.end() || --count->second > 0) continue;
        live_cgroups_.erase(count);
        // The parent holds the same workload (a service's sub-cgroup): it runs on, now through
        // the parent.
        if (parent != 0 && index_of.count(parent) && workload_of(parent) == id) {
          continued.emplace_back(parent, id);
          continue;
        }
        tick.ended.push_back(id);
      }
      for (auto& [cgroup, id] : continued) {
        auto parent_at = index_of.find(cgroup);
        const uint64_t grandparent = reading.cgroups[parent_at->second].parent_id;
        if (live_.try_emplace(cgroup, Live{id, grandparent}).second) ++live_cgroups_[id];
      }
    }
  }

  last_usage_ = std::move(next_usage);
  identities_ = std::move(identities_next_);
  identities_next_.clear();
  last_monotonic_ns_ = reading.monotonic_ns;
  last_idle_ns_ = reading.idle_ns;
  last_idle_known_ = reading.idle_known;
  last_lost_ = reading.cgroups_lost;
  primed_ = true;
  return tick;
}

}  // namespace wattprobe
