#pragma once

#include <memory>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/snapshot.h"
#include "collectors/energy_source.h"
#include "collectors/gpu_power_limit.h"
#include "collectors/gpu_split.h"

namespace wattprobe {

/// What a source that reads GPUs adds beyond their energy: the split of each GPU's energy
/// between processes, the rows that say how it was split, and the GPUs' power limits. The source
/// table makes one for a source that reads GPUs (SourceEntry::make_gpu_split), so the pipeline
/// loops over these and names no GPU source. Not thread-safe: the sampling thread owns it.
class GpuSplitSource {
 public:
  virtual ~GpuSplitSource() = default;
  /// This tick's split of every GPU the source reads. `now_s`: a monotonic time in seconds.
  virtual std::vector<GpuDeviceTick> tick(double now_s) = 0;
  /// Rows of wattprobe_gpu_info (sources that list their GPUs) and of wattprobe_gpu_split_info
  /// (the last tick's split per GPU).
  virtual void append_rows(Family& info, Family& split) const = 0;
  /// Each GPU's power limit, where the source reads one.
  virtual std::vector<GpuPowerLimit> power_limits() const = 0;
  /// The discrete GPUs whose embodied carbon the host carries (an emulated display is none).
  virtual int embodied_gpus() const { return 0; }
};

/// NVML's GPUs, split by NVML's per-process signals (GpuWorkloads).
std::unique_ptr<GpuSplitSource> make_nvml_gpu_split(const NvmlSource& nvml, const HostPaths& paths);
/// hwmon's GPUs (amdgpu, i915, xe), split by DRM busy time; null when hwmon reads no GPU.
std::unique_ptr<GpuSplitSource> make_drm_gpu_split(const HwmonSource& hwmon, const HostPaths& paths);

/// wattprobe_gpu_info, wattprobe_gpu_split_info and wattprobe_gpu_power_limit_watts over every
/// source's split; nothing when there is none.
void append_gpu_split_families(const std::vector<std::unique_ptr<GpuSplitSource>>& splits,
                               std::vector<Family>& out);

}  // namespace wattprobe
