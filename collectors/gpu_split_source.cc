#include "collectors/gpu_split_source.h"

#include <chrono>

namespace wattprobe {

namespace {

class NvmlGpuSplit : public GpuSplitSource {
 public:
  NvmlGpuSplit(const NvmlSource& nvml, const HostPaths& paths) : nvml_(nvml), workloads_(paths) {}
  std::vector<GpuDeviceTick> tick(double now_s) override {
    return workloads_.tick(nvml_, now_s).devices;
  }
  void append_rows(Family& info, Family& split) const override {
    workloads_.append_families(nvml_, info, split);
  }
  std::vector<GpuPowerLimit> power_limits() const override { return nvml_.power_limits(); }
  int embodied_gpus() const override { return static_cast<int>(nvml_.devices().size()); }

 private:
  const NvmlSource& nvml_;  // owned by the energy meter, which outlives the pipeline's splits
  GpuWorkloads workloads_;
};

class DrmGpuSplit : public GpuSplitSource {
 public:
  DrmGpuSplit(const HwmonSource& hwmon, const HostPaths& paths) : hwmon_(hwmon), workloads_(paths) {}
  std::vector<GpuDeviceTick> tick(double) override { return workloads_.tick(hwmon_).devices; }
  void append_rows(Family&, Family& split) const override { workloads_.append_split_info(split); }
  std::vector<GpuPowerLimit> power_limits() const override { return hwmon_.gpu_power_limits(); }

 private:
  const HwmonSource& hwmon_;
  DrmGpuWorkloads workloads_;
};

}  // namespace

std::unique_ptr<GpuSplitSource> make_nvml_gpu_split(const NvmlSource& nvml, const HostPaths& paths) {
  return std::make_unique<NvmlGpuSplit>(nvml, paths);
}

std::unique_ptr<GpuSplitSource> make_drm_gpu_split(const HwmonSource& hwmon, const HostPaths& paths) {
  for (const auto& s : hwmon.sensors()) {
    if (s.domain == "gpu") return std::make_unique<DrmGpuSplit>(hwmon, paths);
  }
  return nullptr;
}

void append_gpu_split_families(const std::vector<std::unique_ptr<GpuSplitSource>>& splits,
                               std::vector<Family>& out) {
  if (splits.empty()) return;
  Family info{"wattprobe_gpu_info",
              "GPUs the nvml source reads; device is the socket label of the gpu domain's node "
              "series. energy says whether joules are the GPU's counter or integrated power.",
              MetricType::gauge,
              {}};
  Family split{"wattprobe_gpu_split_info",
               "How the last tick's GPU energy was split by process (exclusive, sampled, even, "
               "busy_time, none), per source and device; with none, why.",
               MetricType::gauge,
               {}};
  std::vector<GpuPowerLimit> limits;
  for (const auto& s : splits) {
    s->append_rows(info, split);
    for (GpuPowerLimit& l : s->power_limits()) limits.push_back(std::move(l));
  }
  if (!info.series.empty()) out.push_back(std::move(info));
  out.push_back(std::move(split));
  append_gpu_power_limit_family(limits, out);
}

}  // namespace wattprobe
