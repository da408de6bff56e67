#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// Who a cgroup belongs to, in the labels of the metric contract (docs/metrics.md).
/// kind is one of: service (systemd unit), session (user session scope or user@UID.service),
/// container (docker/containerd/cri-o/podman outside Kubernetes), pod (a Kubernetes pod
/// container), vm (a virtual machine: libvirt qemu, KubeVirt, Firecracker, cloud-hypervisor),
/// kernel (kernel threads), system (the root cgroup and slices), other.
struct WorkloadId {
  std::string workload;  // service or container name; for pods "<namespace>/<pod>/<container>";
                         // for KubeVirt VMs "<namespace>/<vmi>"
  std::string kind;
  std::string namespace_;
  std::string pod;
  std::string container;

  bool operator==(const WorkloadId&) const = default;
  /// An order for ties (which of two workloads last seen together leaves first).
  auto operator<=>(const WorkloadId&) const = default;
};

struct WorkloadIdHash {
  std::size_t operator()(const WorkloadId& id) const noexcept {
    std::hash<std::string> h;
    std::size_t seed = h(id.workload);
    for (const std::string* part : {&id.kind, &id.namespace_, &id.pod, &id.container}) {
      seed ^= h(*part) + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2);
    }
    return seed;
  }
};

/// A workload's identity labels in the metric contract's order (workload, kind, namespace, pod,
/// container), with room for `extra` more.
Labels workload_labels(const WorkloadId& id, std::size_t extra = 0);

/// The identity of a workload across families, from a series' labels: its identity labels'
/// values joined, so the same workload's series in different families meet under one key.
std::string workload_key(const Labels& labels);

/// The folder a vm workload's guest energy goes in (--guest-energy-dir): the VM's name, or
/// "<namespace>_<vmi>" for KubeVirt. One path component, never "." or "..", no '/': nullopt for
/// any other kind or a name that cannot be one.
std::optional<std::string> vm_folder_name(const WorkloadId& id);

}  // namespace wattprobe
