#include "collectors/gpu/gpu_power_limit.h"

#include <cstdio>

#include "agent/base/text_file.h"

namespace wattprobe {

Result<double> checked_gpu_power_limit(double watts, std::string_view where) {
  if (!(watts > 0) || watts > kMaxGpuPowerLimitWatts) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", watts);
    return Error{ErrorKind::malformed, std::string(where),
                 "power limit " + std::string(buf) + " W is out of range (0, " +
                     std::to_string(static_cast<int>(kMaxGpuPowerLimitWatts)) + "] W"};
  }
  return watts;
}

Result<std::optional<double>> parse_hwmon_power_limit(std::string_view text,
                                                      const std::filesystem::path& file) {
  auto uw = parse_u64(text, file);
  if (!uw) return uw.error();
  if (*uw == 0) return std::optional<double>();
  auto watts = checked_gpu_power_limit(static_cast<double>(*uw) / 1e6, file.string());
  if (!watts) {
    Error e = watts.error();
    e.detail = std::to_string(*uw) + " µW: " + e.detail;
    return e;
  }
  return std::optional<double>(*watts);
}

void append_gpu_power_limit_family(const std::vector<GpuPowerLimit>& limits,
                                   std::vector<Family>& out) {
  Family f{"wattprobe_gpu_power_limit_watts",
           "The power limit each GPU's driver enforces now (NVML's enforced limit, hwmon's "
           "power1_cap or PL1); device is the socket label of the gpu domain's node series. "
           "No series for a GPU that states none.",
           MetricType::gauge,
           {}};
  for (const GpuPowerLimit& l : limits) {
    if (!l.watts) continue;
    f.series.push_back({{{"source", l.source}, {"device", std::to_string(l.device)}}, *l.watts});
  }
  out.push_back(std::move(f));
}

}  // namespace wattprobe
