#include "collectors/gpu/gpu_split_source.h"

namespace wattprobe {

void append_gpu_split_families(const std::vector<std::unique_ptr<GpuSplitSource>>& splits,
                               std::vector<Family>& out) {
  if (splits.empty()) return;
  Family info{"wattprobe_gpu_info",
              "GPUs the nvml source reads; device is the socket label of the gpu domain's node "
              "series. energy says whether joules are the GPU's counter or integrated power.",
              MetricType::gauge,
              {}};
  Family split{"wattprobe_gpu_split_info",
               "How the last tick's GPU energy was split by process (exclusive, accounting, "
               "sampled, remainder, even, busy_time, none), per source and device, whether the "
               "signals could separate the processes (confidence confident or uncertain), and "
               "why.",
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
