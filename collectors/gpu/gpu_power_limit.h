#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

/// The power limit a GPU's driver says it enforces now, as the gpu domain's row knows the GPU:
/// `source` and `device` are that row's source and socket.
struct GpuPowerLimit {
  std::string source;
  int device = -1;
  std::optional<double> watts;  // none: the driver states no limit, or its answer was refused
  std::string why;              // without watts: why not
};

/// No GPU is allowed 10 kW (the largest boards are limited to ~1.5 kW): a larger stated limit is
/// a corrupt answer, not a limit.
constexpr double kMaxGpuPowerLimitWatts = 10'000;

/// A limit in watts the driver stated, checked: (0, kMaxGpuPowerLimitWatts]. The error names
/// `where` (a device or a file) and the value.
Result<double> checked_gpu_power_limit(double watts, std::string_view where);

/// A hwmon limit attribute (power1_cap, power1_max) in µW, parsed strictly. 0 means the limit is
/// off (i915's and xe's PL1 read 0 when disabled): nullopt, no error.
Result<std::optional<double>> parse_hwmon_power_limit(std::string_view text,
                                                      const std::filesystem::path& file);

/// wattprobe_gpu_power_limit_watts{source,device}: one series per GPU whose driver states a
/// limit (NvmlSource::power_limits(), HwmonSource::gpu_power_limits()).
void append_gpu_power_limit_family(const std::vector<GpuPowerLimit>& limits,
                                   std::vector<Family>& out);

}  // namespace wattprobe
