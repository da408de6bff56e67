#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/host_paths.h"
#include "agent/options.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// One line of the source table. The table's order is the documented priority (README "Energy
/// sources"): a (domain, socket) given by an earlier source is never counted from a later one.
struct SourceEntry {
  std::string_view name;
  /// Sources of one family read the same counters by different paths (RAPL through powercap,
  /// perf or MSRs); `auto` takes only the first available of a family.
  std::string_view family;
  std::function<std::unique_ptr<EnergySource>(const HostPaths&, const ModelCoefficients&)> make;
};

const std::vector<SourceEntry>& source_registry();

struct SourceStatus {
  std::string name;
  Availability availability;
  bool chosen = false;
  std::string why;  // why chosen or passed over
};

struct SourceChoice {
  std::vector<std::unique_ptr<EnergySource>> chosen;  // priority order
  std::vector<SourceStatus> status;                   // every source in the table
  bool measured = false;                              // a measured source is among the chosen
  bool estimated_cpu = false;  // the CPU's energy comes from the `model` estimate
};

/// Probes the table. `requested` empty = auto: the first available RAPL path, hwmon if it has
/// sensors, nvml if it finds a GPU, and the `model` estimate of the CPU package when no chosen
/// measured source covers the CPU (RAPL, hwmon's non-GPU sensors). So a GPU VM without CPU
/// counters gets its GPUs measured by nvml and its package estimated by model, each labelled by
/// source and measured. A requested source that is not available is still listed, with chosen =
/// false and the reason.
SourceChoice choose_sources(const std::vector<std::string>& requested, const HostPaths& paths,
                            const ModelCoefficients& model);

}  // namespace wattprobe
