#include "collectors/registry.h"

#include <algorithm>
#include <set>

#include "agent/base/text_file.h"
#include "collectors/hwmon.h"
#include "collectors/model.h"
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

SourceChoice choose_sources(const std::vector<std::string>& requested, const HostPaths& paths,
                            const ModelCoefficients& model, const StallCheckWindow& window) {
  SourceChoice out;
  struct Probed {
    const SourceEntry* entry;
    std::unique_ptr<EnergySource> source;
    bool wanted;
  };
  std::vector<Probed> probed;
  for (const SourceEntry& entry : source_registry()) {
    auto source = entry.make(paths, model);
    SourceStatus st{std::string(entry.name), source->probe(), false, "", false, {}, false};
    bool wanted = requested.empty() ||
                  std::find(requested.begin(), requested.end(), entry.name) != requested.end();
    out.status.push_back(std::move(st));
    probed.push_back({&entry, std::move(source), wanted});
  }

  // One check for every candidate, so the agent burns one window of CPU, not one per source.
  std::vector<EnergySource*> checked;
  std::vector<std::size_t> checked_index;
  for (std::size_t i = 0; i < probed.size(); ++i) {
    if (probed[i].wanted && out.status[i].availability.available && probed[i].source->measured()) {
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
      st.why = "estimate, used only when no measured source is readable";
    } else {
      st.chosen = true;
      st.why = "chosen";
      families_taken.insert(entry.family);
      out.measured = out.measured || source->measured();
      out.chosen.push_back(std::move(source));
    }
  }
  if (requested.empty() && !out.measured && model_source) {
    out.status[model_status].chosen = true;
    out.status[model_status].why = "chosen: no measured source is readable on this host";
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
