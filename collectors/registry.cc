#include "collectors/registry.h"

#include <algorithm>
#include <set>

#include "agent/base/text_file.h"
#include "collectors/energy/host_energy.h"
#include "collectors/energy/hwmon.h"
#include "collectors/energy/ipmi.h"
#include "collectors/energy/model.h"
#include "collectors/energy/nvml.h"
#include "collectors/energy/rapl_msr.h"
#include "collectors/energy/rapl_perf.h"
#include "collectors/energy/rapl_powercap.h"
#include "collectors/energy/redfish.h"
#include "collectors/gpu/gpu_split.h"

namespace wattprobe {

const std::vector<SourceEntry>& source_registry() {
  // powercap first: it needs no capability beyond read access and is what every peer reads;
  // perf next (64-bit counts, no wrap); MSRs last (CAP_SYS_RAWIO and per-model quirks).
  static const std::vector<SourceEntry> table{
      // Every source opens its files, perf events and MSR devices in probe(), before the
      // privilege drop, and reads those descriptors afterwards: the kernel checks permission and
      // capabilities when a file is opened (msr_open checks CAP_SYS_RAWIO; energy_uj is 0400
      // root since the PLATYPUS fix, CVE-2020-8694), not when it is read. So none keeps a
      // capability; what each needs to start is in packaging/README.md.
      {"rapl_powercap",
       "rapl",
       "RAPL through /sys/class/powercap (intel-rapl, amd-rapl)",
       {},
       [](const SourceSettings& s) { return make_rapl_powercap_source(s.paths); }},
      {"rapl_perf",
       "rapl",
       "RAPL through the perf_event power PMU",
       {},
       [](const SourceSettings& s) { return make_rapl_perf_source(s.paths); }},
      {"rapl_msr",
       "rapl",
       "RAPL through /dev/cpu/N/msr",
       {},
       [](const SourceSettings& s) { return make_rapl_msr_source(s.paths); }},
      // The BMC's wall power comes before hwmon, so an ACPI power meter (often the same BMC's
      // figure, through the firmware) stands in when the BMC stalls.
      {"redfish",
       "redfish",
       "the chassis' AC input power or energy from its BMC through Redfish (--redfish-url)",
       {},
       [](const SourceSettings& s) { return make_redfish_source(s.redfish); }},
      {"ipmi",
       "ipmi",
       "the BMC's power over DCMI (FreeIPMI): in-band through the kernel's IPMI device, or "
       "over the LAN with --ipmi-host",
       {},
       [](const SourceSettings& s) { return make_ipmi_source(s.paths, s.ipmi); }},
      {"hwmon",
       "hwmon",
       "hwmon power and energy sensors (ACPI power meters, amd_energy, GPU drivers)",
       {},
       [](const SourceSettings& s) { return make_hwmon_source(s.paths); },
       // The line that made the source knows its type: the only place a source is cast down.
       [](const EnergySource& source, const HostPaths& paths) {
         return make_drm_gpu_split(static_cast<const HwmonSource&>(source), paths);
       }},
      {"nvml",
       "nvml",
       "NVIDIA GPUs through NVML, loaded at run time (--nvml-library)",
       {},
       [](const SourceSettings& s) { return make_nvml_source(s.nvml_library); },
       [](const EnergySource& source, const HostPaths& paths) {
         return make_nvml_gpu_split(static_cast<const NvmlSource&>(source), paths);
       }},
      {"host",
       "host",
       "the VM's energy as its host measured it, from --host-energy-path (a guest's source)",
       {},
       [](const SourceSettings& s) { return make_host_energy_source(s.host_energy_path); }},
      {"model",
       "model",
       "an estimate of the CPU package from /proc/stat utilisation (measured=\"false\")",
       {},
       [](const SourceSettings& s) { return make_model_source(s.paths, s.model); }},
  };
  return table;
}

std::unique_ptr<GpuSplitSource> make_gpu_split(const EnergySource& source, const HostPaths& paths) {
  const SourceEntry* entry = find_source(source.name());
  if (entry == nullptr || !entry->make_gpu_split) return nullptr;
  return entry->make_gpu_split(source, paths);
}

const SourceEntry* find_source(std::string_view name) {
  for (const auto& e : source_registry()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string source_names(std::string_view separator) {
  std::string out;
  for (const auto& e : source_registry()) {
    if (!out.empty()) out += separator;
    out += e.name;
  }
  return out;
}

SourceChoice choose_sources(const std::vector<std::string>& requested,
                            const SourceSettings& settings, const StallCheckWindow& window) {
  const HostPaths& paths = settings.paths;
  SourceChoice out;
  struct Probed {
    const SourceEntry* entry;
    std::unique_ptr<EnergySource> source;
    bool wanted;
  };
  std::vector<Probed> probed;
  for (const SourceEntry& entry : source_registry()) {
    auto source = entry.make(settings);
    bool wanted = requested.empty() ||
                  std::find(requested.begin(), requested.end(), entry.name) != requested.end();
    SourceStatus st;
    st.name = std::string(entry.name);
    st.requested = wanted;
    st.availability = source->probe();
    if (settings.doctor) st.doctor = source->doctor_section();
    out.status.push_back(std::move(st));
    probed.push_back({&entry, std::move(source), wanted});
  }

  // One check for every candidate, so the agent burns one window of CPU, not one per source.
  std::vector<EnergySource*> checked;
  std::vector<std::size_t> checked_index;
  for (std::size_t i = 0; i < probed.size(); ++i) {
    if (probed[i].wanted && out.status[i].availability.available &&
        probed[i].source->measures_cpu() && !probed[i].source->knows_stalls()) {
      checked.push_back(probed[i].source.get());
      checked_index.push_back(i);
    }
  }
  std::vector<SourceCheck> checks = check_counters_advance(
      checked, window ? window : StallCheckWindow([&paths] { return cpu_burst(paths); }));
  for (std::size_t k = 0; k < checks.size(); ++k) {
    SourceStatus& st = out.status[checked_index[k]];
    st.stalled_counters = checks[k].stalled_descriptions();
    if (st.stalled_counters.empty()) continue;
    const std::string stalled = join(st.stalled_counters, ", ");
    if (checks[k].all_stalled()) {
      st.stalled = true;
      st.availability.available = false;
      st.availability.reason = "stalled: no counter moved while the CPUs were busy (" + stalled +
                               "); " + std::string(kStalledCause) + " [" + st.availability.reason +
                               "]";
      st.availability.remedy = std::string(kStalledRemedy);
    } else {
      st.availability.reason += "; stalled (taken from the next source): " + stalled;
      for (const CheckedCounter& c : checks[k].counters) {
        if (c.stalled) out.stalled.push_back({st.name, c.domain, c.socket, c.keys});
      }
    }
  }

  std::set<std::string_view> families_taken;
  std::unique_ptr<EnergySource> model_source;
  std::size_t model_status = 0;
  std::vector<std::pair<std::size_t, std::unique_ptr<EnergySource>>> standby;
  bool cpu_measured = false;
  for (std::size_t i = 0; i < probed.size(); ++i) {
    const SourceEntry& entry = *probed[i].entry;
    SourceStatus& st = out.status[i];
    auto& source = probed[i].source;
    if (!probed[i].wanted) {
      st.why = "not in --sources";
    } else if (!st.availability.available) {
      st.why = st.stalled ? "stalled: its counters do not advance" : "not available";
    } else if (requested.empty() && families_taken.count(entry.family)) {
      st.why = "another RAPL path was chosen first (same counters)";
      standby.emplace_back(i, std::move(source));
    } else if (requested.empty() && entry.name == "model") {
      model_source = std::move(source);
      model_status = i;
      st.why = "estimate, used only when no measured source covers the CPU";
    } else {
      st.chosen = true;
      st.why = "chosen";
      families_taken.insert(entry.family);
      out.measured = out.measured || source->measured();
      cpu_measured = cpu_measured || source->measures_cpu();
      out.estimated_cpu = out.estimated_cpu || !source->measured();
      out.chosen.push_back(std::move(source));
    }
  }
  if (requested.empty() && !cpu_measured && model_source) {
    out.status[model_status].chosen = true;
    out.status[model_status].why =
        out.measured ? "chosen: no measured source covers the CPU, so its package energy is "
                       "estimated (the measured sources keep their own domains, labelled "
                       "measured)"
                     : "chosen: no measured source is readable on this host";
    out.estimated_cpu = true;
    out.chosen.push_back(std::move(model_source));
  } else if (model_source) {
    standby.emplace_back(model_status, std::move(model_source));
  }
  // Only a chosen source can stall while run runs; with none measured nothing needs a stand-in.
  if (out.measured) {
    for (auto& [i, source] : standby) {
      out.status[i].standby = true;
      out.status[i].why += "; stands by for a counter that stalls";
      out.standby.push_back(std::move(source));
    }
  }
  // A stalled counter of a source that is neither chosen nor standing by concerns nobody.
  std::set<std::string> kept;
  for (const auto& s : out.chosen) kept.insert(std::string(s->name()));
  for (const auto& s : out.standby) kept.insert(std::string(s->name()));
  std::erase_if(out.stalled, [&](const StalledAtStart& s) { return !kept.count(s.source); });
  return out;
}

}  // namespace wattprobe
