#include "collectors/registry.h"

#include <algorithm>
#include <set>

#include "collectors/hwmon.h"
#include "collectors/model.h"
#include "collectors/nvml.h"
#include "collectors/rapl_msr.h"
#include "collectors/rapl_perf.h"
#include "collectors/rapl_powercap.h"

namespace wattprobe {

const std::vector<SourceEntry>& source_registry() {
  // powercap first: it needs no capability beyond read access and is what every peer reads;
  // perf next (64-bit counts, no wrap); MSRs last (CAP_SYS_RAWIO and per-model quirks).
  static const std::vector<SourceEntry> table{
      {"rapl_powercap", "rapl",
       [](const HostPaths& p, const ModelCoefficients&) { return make_rapl_powercap_source(p); }},
      {"rapl_perf", "rapl",
       [](const HostPaths& p, const ModelCoefficients&) { return make_rapl_perf_source(p); }},
      {"rapl_msr", "rapl",
       [](const HostPaths& p, const ModelCoefficients&) { return make_rapl_msr_source(p); }},
      {"hwmon", "hwmon",
       [](const HostPaths& p, const ModelCoefficients&) { return make_hwmon_source(p); }},
      {"nvml", "nvml",
       [](const HostPaths& p, const ModelCoefficients&) { return make_nvml_source(p); }},
      {"model", "model",
       [](const HostPaths& p, const ModelCoefficients& m) {
         ModelOptions o;
         o.min_watts_per_vcpu = m.min_watts_per_vcpu;
         o.max_watts_per_vcpu = m.max_watts_per_vcpu;
         return make_model_source(p, o);
       }},
  };
  return table;
}

namespace {

// Whether a measured source covers the CPU (package, psys or a platform meter). NVML and
// hwmon's GPU sensors measure only GPUs: with nothing else, the CPU still needs the estimate.
bool measures_cpu(EnergySource& source) {
  if (!source.measured() || source.name() == "nvml") return false;
  if (auto* hwmon = dynamic_cast<HwmonSource*>(&source)) {
    return std::any_of(hwmon->sensors().begin(), hwmon->sensors().end(),
                       [](const HwmonSource::Sensor& s) { return s.domain != "gpu"; });
  }
  return true;
}

}  // namespace

SourceChoice choose_sources(const std::vector<std::string>& requested, const HostPaths& paths,
                            const ModelCoefficients& model) {
  SourceChoice out;
  std::set<std::string_view> families_taken;
  std::unique_ptr<EnergySource> model_source;
  std::size_t model_status = 0;
  bool cpu_measured = false;
  for (const SourceEntry& entry : source_registry()) {
    auto source = entry.make(paths, model);
    SourceStatus st{std::string(entry.name), source->probe(), false, ""};
    bool wanted = requested.empty() ||
                  std::find(requested.begin(), requested.end(), entry.name) != requested.end();
    if (!wanted) {
      st.why = "not in --sources";
    } else if (!st.availability.available) {
      st.why = "not available";
    } else if (requested.empty() && families_taken.count(entry.family)) {
      st.why = "another RAPL path was chosen first (same counters)";
    } else if (requested.empty() && entry.name == "model") {
      model_source = std::move(source);
      model_status = out.status.size();
      st.why = "estimate, used only when no measured source covers the CPU";
    } else {
      st.chosen = true;
      st.why = "chosen";
      families_taken.insert(entry.family);
      out.measured = out.measured || source->measured();
      cpu_measured = cpu_measured || measures_cpu(*source);
      out.estimated_cpu = out.estimated_cpu || !source->measured();
      out.chosen.push_back(std::move(source));
    }
    out.status.push_back(std::move(st));
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
  }
  return out;
}

}  // namespace wattprobe
