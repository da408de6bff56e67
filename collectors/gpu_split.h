#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/snapshot.h"
#include "collectors/cgroup_resolver.h"
#include "collectors/cpu_accounting.h"
#include "collectors/drm_fdinfo.h"
#include "collectors/gpu_split_source.h"
#include "collectors/hwmon.h"
#include "collectors/nvml.h"

namespace wattprobe {

/// One process's part of a GPU's workload energy in a tick.
struct GpuPidShare {
  uint32_t pid = 0;
  double share = 0;  // 0..1
};

/// How a GPU's dynamic energy of one tick is divided among its processes (README "GPU energy
/// per process"). `method` is the split= label:
///   exclusive  one process held a compute context: it gets everything (exact)
///   sampled    several held one: their shares of NVML's per-process samples over the last
///              window, shrunk toward an even split (see GpuSplitter)
///   even       several held one and no sample named any: an even split
///   none       no split is possible (MIG, samples NOT_SUPPORTED, nobody holds a context):
///              the dynamic energy is unattributed, and `why` says why
struct GpuSplitResult {
  std::string method = "none";
  std::string why;
  std::vector<GpuPidShare> shares;  // sums to 1 unless method is "none"
};

/// The per-process split of one GPU, from the signals NVML gives without changing a setting.
///
/// NVML's per-process samples each name one process, every ~200 ms, like snapshots. With random
/// timing their sums land within a few points of the truth; with work periodic in step with the
/// sampling they alias, and a process doing a quarter of the work can vanish from them. Nothing
/// else NVML reports without accounting mode tells an aliased busy process from an idle one
/// that holds a context (measured on the H200 traces in tests/data/nvml: README "GPU energy per
/// process"), so the sampled shares are shrunk toward an even split over the processes holding
/// a context: share = (1 − λ) · sampled + λ / n, λ = `shrink`. That bounds the error of both
/// failure modes (an aliased minority gets λ/n instead of nothing; an idle context holder gets
/// λ/n instead of nothing) rather than being exact in one and badly wrong in the other.
class GpuSplitter {
 public:
  explicit GpuSplitter(double window_seconds = 2, double shrink = 0.25);

  /// One tick. `now_s` is a monotonic time in seconds.
  GpuSplitResult split(const GpuActivity& activity, double now_s);

 private:
  struct Seen {
    double t;
    uint32_t pid;
    unsigned sm;
  };
  double window_;
  double shrink_;
  std::deque<Seen> window_samples_;
};

/// The cgroup v2 path of a process ("0::" line of /proc/<pid>/cgroup), or nullopt when it is
/// gone or has none.
std::optional<std::string> process_cgroup(const HostPaths& paths, uint32_t pid);
/// /proc/<pid>/comm, non-printable bytes replaced; "" when the process is gone.
std::string process_comm(const HostPaths& paths, uint32_t pid);

/// Turns the nvml source's activity into a GpuTick: one GpuSplitter per GPU, and each process
/// mapped to its workload through /proc/<pid>/cgroup (the identity path of procfs accounting),
/// so containers and pods are charged through the existing resolver. A process that exited
/// between the sample and the read has no workload: its share is unattributed.
class GpuWorkloads {
 public:
  explicit GpuWorkloads(HostPaths paths);
  GpuTick tick(const NvmlSource& nvml, double now_s);
  /// wattprobe_gpu_info rows and the last tick's split per GPU.
  void append_families(const NvmlSource& nvml, Family& info, Family& split) const;

 private:
  HostPaths paths_;
  CgroupResolver resolver_;
  std::vector<GpuSplitter> splitters_;
  std::vector<GpuSplitResult> last_;
};

/// Splits the energy of hwmon's GPUs (amdgpu, i915, xe) by the DRM busy time each process added
/// in the tick: the kernel's own per-process GPU accounting (/proc/<pid>/fdinfo, drm-engine-*),
/// matched to the hwmon chip through its PCI address (drm-pdev = the chip's `device` link).
/// Busy time is what the GPU's engines spent on a process's work, so it is the GPU's
/// counterpart of CPU time; it says nothing about how much power that work drew, which is the
/// same assumption the CPU split makes. A tick in which no process added busy time leaves the
/// GPU's dynamic energy unattributed, with why.
class DrmGpuWorkloads {
 public:
  explicit DrmGpuWorkloads(HostPaths paths);
  GpuTick tick(const HwmonSource& hwmon);
  /// wattprobe_gpu_split_info rows for hwmon's GPUs.
  void append_split_info(Family& split) const;

 private:
  HostPaths paths_;
  CgroupResolver resolver_;
  DrmBusySplit busy_;
  std::map<int, GpuSplitResult> last_;  // by device (hwmon's socket)
};

/// NVML's GPUs, split by NVML's per-process signals (GpuWorkloads).
std::unique_ptr<GpuSplitSource> make_nvml_gpu_split(const NvmlSource& nvml, const HostPaths& paths);
/// hwmon's GPUs (amdgpu, i915, xe), split by DRM busy time; null when hwmon reads no GPU.
std::unique_ptr<GpuSplitSource> make_drm_gpu_split(const HwmonSource& hwmon,
                                                   const HostPaths& paths);

}  // namespace wattprobe
