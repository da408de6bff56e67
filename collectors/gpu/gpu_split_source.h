#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/snapshot.h"
#include "agent/base/workload_id.h"
#include "collectors/gpu/gpu_power_limit.h"

namespace wattprobe {

/// A process's part of a GPU's workload energy, with its workload.
struct GpuWorkloadShare {
  WorkloadId id;
  uint32_t pid = 0;
  std::string comm;
  double share = 0;
};

/// The split of one GPU for attribution: shares + unresolved = 1 unless method is "none".
struct GpuDeviceTick {
  std::string source;  // the energy source whose `gpu` row (socket = device) this splits
  int device = -1;
  std::string method = "none";
  std::string confidence = "uncertain";
  std::string why;
  double utilisation = -1;  // 0..1, for the GPU's idle estimate; -1 unknown
  std::vector<GpuWorkloadShare> shares;
  double unresolved = 0;  // share of processes gone before their workload was read
};

/// The GPUs of every source that can split them: nvml's and hwmon's may both be present.
struct GpuTick {
  std::vector<GpuDeviceTick> devices;
  const GpuDeviceTick* find(std::string_view source, int device) const {
    for (const GpuDeviceTick& d : devices) {
      if (d.device == device && d.source == source) return &d;
    }
    return nullptr;
  }
};

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

/// wattprobe_gpu_info, wattprobe_gpu_split_info and wattprobe_gpu_power_limit_watts over every
/// source's split; nothing when there is none.
void append_gpu_split_families(const std::vector<std::unique_ptr<GpuSplitSource>>& splits,
                               std::vector<Family>& out);

}  // namespace wattprobe
