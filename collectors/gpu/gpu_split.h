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
#include "collectors/cpu/cpu_accounting.h"
#include "collectors/energy/hwmon.h"
#include "collectors/energy/nvml.h"
#include "collectors/gpu/drm_fdinfo.h"
#include "collectors/gpu/gpu_split_source.h"
#include "collectors/identity/cgroup_resolver.h"

namespace wattprobe {

/// One process's part of a GPU's workload energy in a tick.
struct GpuPidShare {
  uint32_t pid = 0;
  double share = 0;  // 0..1
};

/// How a GPU's dynamic energy of one tick is divided among its processes (README "GPU energy
/// per process"). `method` is the split= label:
///   exclusive  one process held a compute context: it gets everything (exact)
///   accounting accounting mode is on: each process's busy seconds over the last window, from
///              nvmlDeviceGetAccountingStats (every process, all the time: no sampling)
///   sampled    several processes are named by NVML's per-process samples: what each sample
///              explains of the device's utilisation, and the rest in proportion to how often
///              each was named
///   remainder  one process is named in every sample while others hold contexts: it keeps what
///              its samples explain, and what they leave of the device's utilisation goes to the
///              others (always `uncertain`: periodic work in step with the sampling looks the
///              same whichever process did it)
///   even       several held one and no sample named any: an even split
///   none       no split is possible (MIG, samples NOT_SUPPORTED, nobody holds a context):
///              the dynamic energy is unattributed, and `why` says why
/// `confidence` is "confident" where the signals separate the processes, "uncertain" where they
/// cannot (the split is then the best the signals allow, and `why` gives the bound).
struct GpuSplitResult {
  std::string method = "none";
  std::string confidence = "uncertain";
  std::string why;
  std::vector<GpuPidShare> shares;  // sums to 1 unless method is "none"
};

/// The per-process split of one GPU, from every signal NVML gives without changing a setting.
///
/// Measured on the H200 traces in tests/data/nvml: each per-process sample names one process
/// (every ~200 ms), and its smUtil is a slow average that takes seconds to follow a change.
/// The device's utilisation covers every process. So, over the last `window` seconds:
/// - with two or more processes named, each gets what its samples explain (Σ smUtil / samples)
///   and the part of the device's utilisation they leave unexplained in proportion to how often
///   it was named: random timing, and the split lands within a few points of the truth;
/// - with one process named while others hold contexts, the samples may alias: the others may be
///   idle, or busy exactly between the samples. The unexplained utilisation goes to them evenly
///   (`remainder`), labelled `uncertain` once the device was busier than the samples explain in
///   the last `history` seconds, since nothing else NVML reports tells the two apart;
/// - with accounting mode on, the driver's per-process busy time replaces both (`accounting`).
class GpuSplitter {
 public:
  explicit GpuSplitter(double window_seconds = 2, double detect_seconds = 5,
                       double history_seconds = 20, double accounting_seconds = 10);

  /// One tick. `now_s` is a monotonic time in seconds.
  GpuSplitResult split(const GpuActivity& activity, double now_s);

 private:
  struct Seen {
    double t;
    uint32_t pid;
    unsigned sm;
    bool busy;  // the device was busy at this read and the one before: the sample names work
  };
  struct Util {
    double t;
    double percent;
  };
  struct Busy {
    double t;
    std::map<uint32_t, std::pair<double, double>> busy_life;  // pid → (busy s, lifetime s)
  };
  std::optional<GpuSplitResult> from_accounting(const GpuActivity& a, double now_s);
  GpuSplitResult from_samples(const GpuActivity& a, double now_s);

  double window_, detect_, history_, accounting_window_;
  std::deque<Seen> samples_;
  std::deque<Util> util_;
  std::map<uint32_t, unsigned> latest_;  // each process's last smUtil
  double previous_utilisation_ = -1;
  // The one-named pattern (named pid, context holders) and when, within it, the device was
  // busier than the samples explained.
  std::optional<std::pair<uint32_t, std::vector<uint32_t>>> pattern_;
  std::deque<std::pair<double, double>> alias_;  // (t, unexplained fraction) in the pattern
  std::deque<Busy> busy_;
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
