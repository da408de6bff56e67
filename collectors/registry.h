#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "collectors/energy/counter_stall.h"
#include "collectors/energy/ipmi.h"
#include "collectors/energy/model.h"
#include "collectors/energy/redfish.h"
#include "collectors/energy_source.h"

namespace wattprobe {

class GpuSplitSource;

/// What sources are made from: the host's roots and each source's own options.
struct SourceSettings {
  HostPaths paths;
  ModelOptions model;  // [source.model]
  /// --nvml-library: a bare name goes through the loader's search path, as the driver installs it.
  std::filesystem::path nvml_library{"libnvidia-ml.so.1"};
  /// --host-energy-path: the VM's folder from the host's --guest-energy-dir (or its energy.json);
  /// empty: the `host` source is not available.
  std::filesystem::path host_energy_path;
  RedfishOptions redfish;  // [source.redfish]: --redfish-*; url empty: not available
  IpmiOptions ipmi;        // [source.ipmi]: --ipmi-*; host empty: in-band
  /// For doctor: take each source's DoctorSection after its probe (it may read the hardware
  /// once more, which run does not need).
  bool doctor = false;
};

/// A capability a source still needs after start-up, and why (doctor prints the reasons).
struct CapabilityNeed {
  int capability;  // CAP_* from <linux/capability.h>
  std::string_view why;
};

/// One line of the source table: everything the rest of the agent knows of a source. `--sources`
/// checking and its help text, the privilege drop, doctor and the choice below read it; adding a
/// source is its file pair, one line here and its test. The table's order is the documented
/// priority (README "Energy sources"): a (domain, socket) given by an earlier source is never
/// counted from a later one.
struct SourceEntry {
  std::string_view name;
  /// Sources of one family read the same counters by different paths (RAPL through powercap,
  /// perf or MSRs); `auto` takes only the first available of a family.
  std::string_view family;
  std::string_view help;  // one phrase: what it reads
  /// What it needs after the privilege drop; none for world-readable files (model, nvml).
  std::vector<CapabilityNeed> capabilities;
  std::function<std::unique_ptr<EnergySource>(const SourceSettings&)> make;
  /// For a source that reads GPUs: the per-process split of their energy, its rows and the
  /// GPUs' power limits (collectors/gpu/gpu_split_source.h); may return null (no GPU read).
  std::function<std::unique_ptr<GpuSplitSource>(const EnergySource&, const HostPaths&)>
      make_gpu_split = nullptr;
};

const std::vector<SourceEntry>& source_registry();
/// The entry of that name, or null.
const SourceEntry* find_source(std::string_view name);
/// The GPU split of a chosen source, from its table line; null for a source without GPUs.
std::unique_ptr<GpuSplitSource> make_gpu_split(const EnergySource& source, const HostPaths& paths);

/// "rapl_powercap,rapl_perf,...": the names in priority order.
std::string source_names(std::string_view separator = ",");

struct SourceStatus {
  std::string name;
  bool requested = false;  // named in --sources, or any source under auto
  Availability availability;
  bool chosen = false;
  std::string why;  // why chosen or passed over
  /// Every counter it has that must move stood still in the start-up check: not available.
  bool stalled = false;
  /// Its counters that stood still ("package socket 0 (intel-rapl:0) stayed at 123"); a source
  /// with some of them still moving stays available and takes those from the next source.
  std::vector<std::string> stalled_counters;
  /// Kept to take over a counter of a chosen source that stalls while `run` runs.
  bool standby = false;
  /// The source's own section of doctor's report, taken right after its probe.
  DoctorSection doctor;
};

struct SourceChoice {
  std::vector<std::unique_ptr<EnergySource>> chosen;  // priority order
  /// Available sources `auto` did not choose (another path to the same counters, the `model`
  /// estimate), in priority order: what stands in for a stalled counter of a chosen source.
  std::vector<std::unique_ptr<EnergySource>> standby;
  std::vector<StalledAtStart> stalled;
  std::vector<SourceStatus> status;  // every source in the table
  bool measured = false;             // a measured source is among the chosen
  bool estimated_cpu = false;        // the CPU's energy comes from the `model` estimate
};

/// The start-up check's wait between its two reads; empty: cpu_burst() on `paths`.
using StallCheckWindow = std::function<StallEvidence()>;

/// Probes the table, then reads every available measured source twice across `window` (a short
/// CPU burst of the agent's own) and takes a source whose counters did not move as stalled, not
/// available. `requested` empty = auto: the first available RAPL path, hwmon if it has sensors,
/// nvml if it finds a GPU, and the `model` estimate of the CPU package when no chosen measured
/// source covers the CPU (so a GPU VM without CPU counters gets its GPUs measured by nvml and its
/// package estimated by model, each labelled); the other available sources stand by. A requested
/// source that is not available is still listed, with chosen = false and the reason.
SourceChoice choose_sources(const std::vector<std::string>& requested,
                            const SourceSettings& settings, const StallCheckWindow& window = {});

/// What doctor and the log say about a stalled source: its likely cause and what to do.
inline constexpr std::string_view kStalledCause =
    "likely a virtualised PMU or powercap/RAPL without passthrough: the hypervisor shows the "
    "counter but does not advance it, so it would report 0 W whatever the host draws";
inline constexpr std::string_view kStalledRemedy =
    "on a VM, ask the hypervisor to pass RAPL through (or measure on the host); until then run "
    "takes the next source in priority, down to the `model` estimate";

}  // namespace wattprobe
