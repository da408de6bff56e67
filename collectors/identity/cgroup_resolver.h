#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "agent/base/host_paths.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// The cgroup v2 hierarchy: <sys>/fs/cgroup when it holds cgroup.controllers (pure v2), else
/// <sys>/fs/cgroup/unified (hybrid: v1 controllers plus a v2 tree for systemd), else nullopt
/// (pure v1: identities then come from the cpuacct line of /proc/<pid>/cgroup).
std::optional<std::filesystem::path> find_cgroup2_root(const HostPaths& paths);

struct PodInfo {
  std::string namespace_;
  std::string name;
};

/// Kubernetes names the kubelet leaves on disk, so the agent needs no API server access:
///   /var/log/pods/<namespace>_<pod>_<uid>/<container>/        pod uid → namespace, pod
///   /var/log/containers/<pod>_<namespace>_<container>-<64 hex>.log  container id → container
/// Lookups re-read the folders at most once per `min_refresh`, and early on a miss (a pod that
/// started since the last read), still no more than once per `min_refresh_on_miss`.
/// Not thread-safe: the lookups update the cache (hence mutable state behind const lookups).
class PodNames {
 public:
  explicit PodNames(HostPaths paths,
                    std::chrono::milliseconds min_refresh = std::chrono::seconds(10),
                    std::chrono::milliseconds min_refresh_on_miss = std::chrono::seconds(1));

  /// `uid` in the dashed form of the API ("0b1c...-...-..."), as in /var/log/pods.
  std::optional<PodInfo> pod(std::string_view uid) const;
  /// `container_id` is the full 64-hex runtime id.
  std::optional<std::string> container(std::string_view container_id) const;
  /// Reads both folders now.
  void refresh() const;

 private:
  void maybe_refresh(bool miss) const;

  HostPaths paths_;
  std::chrono::milliseconds min_refresh_;
  std::chrono::milliseconds min_refresh_on_miss_;
  mutable std::optional<std::chrono::steady_clock::time_point> last_refresh_;
  mutable std::unordered_map<std::string, PodInfo> pods_;            // uid → names
  mutable std::unordered_map<std::string, std::string> containers_;  // 64 hex → name
};

/// Maps a cgroup v2 path (relative to the v2 root, leading "/", as in the "0::" line of
/// /proc/<pid>/cgroup) to a workload. Pure apart from the PodNames lookups. Never fails: a path
/// it cannot read (over 4096 bytes, a component that is not printable UTF-8 or over 255 bytes) is
/// cut before the first bad component and the clean prefix decides; an empty result is
/// {"other","other"}. Every string in the result is printable UTF-8, fit for a label value.
///
/// Shapes (first match wins):
///   "/"                                        → {"system", kind "system"} (root: kthreads, early
///   boot)
///   user.slice/…/user@<uid>.service/…           → {"user@<uid>.service", "session"}, whatever the
///                                                 names below it (a rootless container, or a
///                                                 cgroup a user named like a pod, is the user's)
///   user.slice/…/session-<n>.scope              → {"session-<n>.scope", "session"}
///   kubepods…/…pod<uid>…/<runtime id>           → kind "pod", workload
///   "<ns>/<pod>/<container>",
///                                                 or "<uid>/<12 hex>" when names are unknown;
///                                                 the pod slice alone or conmon → container "";
///                                                 a KubeVirt launcher pod (named
///                                                 virt-launcher-<vmi>-<5 chars>, names known)
///                                                 → kind "vm", workload "<ns>/<vmi>", whole pod
///   docker-|cri-containerd-|crio-|libpod-|nerdctl-<64 hex>[.scope], a bare <64 hex>
///                                              → kind "container", workload = container = 12 hex
///   machine.slice/machine-qemu\x2d<N>\x2d<name>.scope (libvirt qemu/KVM)
///                                              → kind "vm", workload <name> (systemd's escaping
///                                                undone)
///   firecracker/<id> (the jailer's default parent cgroup), a unit firecracker-<name>.* or
///   firecracker@<name>.*, cloud-hypervisor-<name>.* or cloud-hypervisor@<name>.*
///                                              → kind "vm", workload <name>
///   lxc.payload.<name>, machine.slice/machine-<name>.scope (nspawn, libvirt-lxc)
///                                              → kind "container", workload <name>
///   the first *.service|*.scope|*.socket|*.mount|*.swap component → kind "service"
///     ("init.scope" directly under the root is systemd itself: kind "system")
///   only *.slice components                      → {last slice, "system"}
///   anything else                                → {first component, "other"}
WorkloadId identity_from_cgroup_path(std::string_view path, const PodNames* pods = nullptr);

/// cgroup id → workload. The id is what bpf_get_current_cgroup_id() returns: the kernfs node id
/// of the cgroup's folder in the v2 hierarchy, which on 64-bit kernels is also the folder's inode
/// number (st_ino) and the 8-byte handle name_to_handle_at() gives (checked on kernel 6.18: the
/// three agree), so a scan with stat() suffices.
///
/// Resolution scans the v2 tree into an id → (path, identity) cache; a miss rescans, at most once
/// per `min_rescan_interval`. A cgroup removed since the last scan keeps its last known identity
/// until evicted (the BPF map may still hold its tasks' time, which belongs to it); eviction, when
/// the cache is over `max_entries`, drops the entries not seen for the most scans first. An id
/// never seen (removed before any scan saw it) resolves to {"other","other"}.
/// Not thread-safe.
class CgroupResolver {
 public:
  struct Options {
    std::chrono::milliseconds min_rescan_interval{1000};
    std::size_t max_entries = 65536;
    std::size_t max_depth = 32;  // the kernel's default cgroup.max.depth is unlimited; a bound
  };

  explicit CgroupResolver(HostPaths paths);
  CgroupResolver(HostPaths paths, Options options);

  WorkloadId resolve_id(uint64_t cgroup_id);
  /// `path` relative to the v2 root, with leading "/" ("0::" line of /proc/<pid>/cgroup).
  WorkloadId resolve_path(std::string_view path) const;
  /// The path last seen for `cgroup_id`, or nullopt.
  std::optional<std::string> path_of(uint64_t cgroup_id);

  /// Scans the v2 tree now, ignoring the rate limit. Returns the number of cgroups seen.
  std::size_t rescan();
  std::size_t cached() const { return cache_.size(); }
  const std::optional<std::filesystem::path>& cgroup2_root() const { return root_; }
  const PodNames& pods() const { return pods_; }

 private:
  struct Entry {
    std::string path;
    WorkloadId id;
    uint64_t last_seen_scan = 0;
  };
  const Entry* lookup(uint64_t cgroup_id);
  void evict();

  HostPaths paths_;
  Options options_;
  std::optional<std::filesystem::path> root_;
  PodNames pods_;
  std::unordered_map<uint64_t, Entry> cache_;
  uint64_t scans_ = 0;
  std::optional<std::chrono::steady_clock::time_point> last_scan_;
};

}  // namespace wattprobe
