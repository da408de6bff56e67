#include "collectors/units/units_sink.h"

#include <fnmatch.h>

#include <chrono>
#include <cstdio>
#include <string_view>
#include <unordered_set>

#include "agent/base/http_client.h"
#include "agent/base/workload_id.h"

namespace wattprobe {
namespace {

constexpr const char* kHostEnergy = "wattprobe_workload_host_energy_joules_total";
constexpr const char* kOperational = "wattprobe_workload_operational_co2e_grams_total";
constexpr const char* kEmbodied = "wattprobe_workload_embodied_co2e_grams_total";
constexpr const char* kGpu = "wattprobe_workload_gpu_energy_joules_total";
const char* const kIdentity[] = {"workload", "kind", "namespace", "pod", "container"};

}  // namespace

UnitsSink::UnitsSink(UnitOptions options, UnitReaderOptions reader, UnitSteadiness steadiness)
    : options_(std::move(options)) {
  units_.reserve(options_.units.size());
  for (const UnitSpec& spec : options_.units) {
    units_.emplace_back(std::make_unique<UnitReader>(spec, reader),
                        UnitWindow(options_.window.count(), steadiness));
  }
}

UnitsSink::~UnitsSink() { begin_stop(); }

Result<bool> UnitsSink::start(const SinkContext& context) {
  log_ = context.log;
  for (Unit& u : units_) {
    u.reader->start();
    u.reader->request();  // the baseline, ready for the first tick
  }
  return true;
}

void UnitsSink::begin_stop() {
  for (Unit& u : units_) u.reader->stop();
}

void UnitsSink::on_snapshot(const SnapshotPtr& snapshot) {
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  observe(*snapshot, now);
  std::lock_guard lock(mu_);
  for (Unit& u : units_) {
    // The read asked for now is paired with this snapshot's energy, not with the next one's:
    // the service answers within milliseconds of it, while the next snapshot is a tick away.
    u.asked[u.reader->request()] = {now, u.sum.joules, u.sum.grams, 0, u.sum.shared_gpu_joules};
    while (u.asked.size() > kMaxAsked) u.asked.erase(u.asked.begin());
  }
}

void UnitsSink::observe(const Snapshot& snapshot, int64_t steady_ms) {
  const Family* host = snapshot.find(kHostEnergy);
  const Family* operational = snapshot.find(kOperational);
  const Family* embodied = snapshot.find(kEmbodied);
  // Each unit's glob tried once per workload, and only the workloads some unit names are keyed:
  // a host of 10,000 workloads and one unit builds a handful of keys a tick, not 30,000.
  std::vector<std::vector<const Series*>> matched(units_.size());
  std::unordered_set<std::string_view> wanted;
  if (host) {
    for (const Series& s : host->series) {
      const std::string& workload = label_value(s.labels, "workload");
      for (std::size_t i = 0; i < units_.size(); ++i) {
        if (fnmatch(units_[i].reader->spec().workload.c_str(), workload.c_str(), 0) == 0) {
          matched[i].push_back(&s);
          wanted.insert(workload);
        }
      }
    }
  }
  auto named = [&wanted](const Labels& labels) {
    return !wanted.empty() && wanted.count(label_value(labels, "workload")) > 0;
  };
  std::map<std::string, double> grams;
  for (const Family* f : {operational, embodied}) {
    if (!f) continue;
    for (const Series& s : f->series) {
      if (named(s.labels)) grams[workload_key(s.labels)] += s.value;
    }
  }
  // GPU energy split between the processes of a GPU that several use: the split's estimate.
  std::map<std::string, double> shared_gpu;
  if (const Family* gpu = snapshot.find(kGpu)) {
    for (const Series& s : gpu->series) {
      if (label_value(s.labels, "split") != "exclusive" && named(s.labels)) {
        shared_gpu[workload_key(s.labels)] += s.value;
      }
    }
  }
  std::lock_guard lock(mu_);
  for (std::size_t index = 0; index < units_.size(); ++index) {
    Unit& u = units_[index];
    const UnitSpec& spec = u.reader->spec();
    // Only the rise of a workload seen at the last snapshot counts: one that appears (or comes
    // back from the checkpoint) brings no past, one that ends takes nothing back.
    std::map<std::string, Totals> now;
    std::optional<Labels> common;
    {
      for (const Series* one : matched[index]) {
        const Series& s = *one;
        const std::string key = workload_key(s.labels);
        auto g = grams.find(key);
        auto shared = shared_gpu.find(key);
        const Totals value{s.value, g == grams.end() ? 0.0 : g->second,
                           shared == shared_gpu.end() ? 0.0 : shared->second};
        if (auto was = u.last.find(key); was != u.last.end()) {
          u.sum.joules += std::max(0.0, value.joules - was->second.joules);
          u.sum.grams += std::max(0.0, value.grams - was->second.grams);
          u.sum.shared_gpu_joules +=
              std::max(0.0, value.shared_gpu_joules - was->second.shared_gpu_joules);
        }
        now.emplace(key, value);
        if (!common) {
          common = Labels{};
          for (const char* name : kIdentity)
            common->emplace_back(name, label_value(s.labels, name));
          (*common)[0].second = spec.workload;
        } else {
          // Several workloads: each identity label kept only where they all agree.
          for (std::size_t i = 1; i < common->size(); ++i) {
            if ((*common)[i].second != label_value(s.labels, kIdentity[i]))
              (*common)[i].second.clear();
          }
        }
      }
    }
    u.last = std::move(now);
    if (common) u.labels = std::move(common);

    u.reading = u.reader->latest();
    if (u.reading.failing != u.failing_logged) {
      log(u.reading.failing.empty() ? "unit " + spec.name + ": reading again"
                                    : "unit " + spec.name + ": " + u.reading.failing + ": " +
                                          u.reading.detail + " (the last good total is kept)");
      u.failing_logged = u.reading.failing;
    }
    // A read still running (a slow service) adds nothing yet; one that failed adds the last good
    // total, so a window of failures counts no units.
    const bool fresh = u.reading.reads != u.reads_seen;
    u.reads_seen = u.reading.reads;
    if (!u.reading.good || !fresh) continue;
    const bool reset = u.reading.resets != u.resets_seen;
    u.resets_seen = u.reading.resets;
    UnitPoint point{steady_ms, u.sum.joules, u.sum.grams, 0, u.sum.shared_gpu_joules};
    if (auto asked = u.asked.find(u.reading.request); asked != u.asked.end()) point = asked->second;
    u.asked.erase(u.asked.begin(), u.asked.upper_bound(u.reading.request));
    point.units = u.reading.total;
    u.window.add(point, u.reading.failing.empty(), reset);
    u.figures = u.window.figures();
    if (!u.stable_logged || *u.stable_logged != u.figures.stable) {
      if (u.stable_logged || u.figures.stable) {
        log("unit " + spec.name + ": per-unit figure " +
            (u.figures.stable ? std::string("steady")
                              : "not steady: " + u.figures.reason + ": " + u.figures.detail));
      }
      u.stable_logged = u.figures.stable;
    }
  }
}

void UnitsSink::append_families(std::vector<Family>& out) const {
  Family units{"wattprobe_workload_functional_units_total",
               "Units of work a service counted (its own counter, [unit.NAME]) since the agent "
               "first read it, restarts of the service handled per series.",
               MetricType::counter};
  Family joules{"wattprobe_workload_energy_per_unit_joules",
                "Host energy of the unit's workloads over --unit-window, divided by the units "
                "counted in it. Absent when the window counted none.",
                MetricType::gauge};
  Family grams{"wattprobe_workload_co2e_per_unit_grams",
               "Operational + embodied CO2e of the unit's workloads over --unit-window, divided "
               "by the units counted in it. Absent when the window counted none.",
               MetricType::gauge};
  Family shared{"wattprobe_workload_energy_per_unit_shared_gpu_ratio",
                "The part of the window's energy per unit that is GPU energy split between the "
                "processes of a GPU several use: the split's estimate, not a measurement.",
                MetricType::gauge};
  Family stable{"wattprobe_workload_energy_per_unit_stable",
                "1 when the per-unit window is steady (>= 20 s of ticks with units, >= 100 "
                "units, each quarter within 5 % of the window), else 0.",
                MetricType::gauge};
  Family why{"wattprobe_workload_energy_per_unit_stability_info",
             "Why the per-unit figure is or is not steady: steady, no_units, warming_up, "
             "few_units or unsteady.",
             MetricType::gauge};
  Family errors{"wattprobe_agent_unit_scrape_errors_total",
                "Reads of a unit's counter that failed, by reason; the last good total is kept.",
                MetricType::counter};
  Family resets{"wattprobe_agent_unit_counter_resets_total",
                "Series of a unit's counter that went down (the service restarted): each "
                "counted its new value as the rise.",
                MetricType::counter};
  std::lock_guard lock(mu_);
  for (const Unit& u : units_) {
    const std::string& name = u.reader->spec().name;
    for (const auto& [reason, n] : u.reader->errors()) {
      errors.series.push_back({Labels{{"unit", name}, {"reason", reason}}, double(n)});
    }
    if (!u.reading.good) continue;
    resets.series.push_back({Labels{{"unit", name}}, double(u.reading.resets)});
    if (!u.labels) continue;
    Labels l = *u.labels;
    l.emplace_back("unit", name);
    units.series.push_back({l, u.reading.total});
    if (u.figures.joules_per_unit) {
      joules.series.push_back({l, *u.figures.joules_per_unit});
      grams.series.push_back({l, *u.figures.grams_per_unit});
      shared.series.push_back({Labels{{"workload", u.labels->front().second}, {"unit", name}},
                               u.figures.shared_gpu_ratio});
    }
    const std::string& workload = u.labels->front().second;
    stable.series.push_back(
        {Labels{{"workload", workload}, {"unit", name}}, u.figures.stable ? 1.0 : 0.0});
    why.series.push_back(
        {Labels{{"workload", workload}, {"unit", name}, {"reason", u.figures.reason}}, 1.0});
  }
  for (Family* f : {&units, &joules, &grams, &shared, &stable, &why, &errors, &resets}) {
    if (!f->series.empty()) out.push_back(std::move(*f));
  }
}

std::string units_doctor_report(const UnitOptions& options) {
  if (options.units.empty()) return "";
  std::string out = "\nUnits of work ([unit.NAME], --unit-window " +
                    std::to_string(options.window.count() / 1000) + " s):\n";
  for (const UnitSpec& spec : options.units) {
    UnitReader reader(spec);
    reader.read_once();
    const UnitReading r = reader.latest();
    // A URL's user info or query may hold a credential: shown as redact_url leaves it.
    const bool http = spec.url.starts_with("http://") || spec.url.starts_with("https://");
    out += "  " + spec.name + ": " + spec.counter + " at " +
           (http ? redact_url(spec.url) : spec.url) + ", workload \"" + spec.workload +
           "\"\n      ";
    if (r.failing.empty()) {
      char sum[64];
      std::snprintf(sum, sizeof sum, "%.17g", r.raw);
      out += "reads " + std::to_string(r.series) + " series" + " summing to " + sum + "\n";
    } else {
      out += "cannot read it (" + r.failing + "): " + r.detail + "\n";
    }
  }
  out +=
      "  run's per-unit figure is steady after 20 s of ticks with units, with >= 100 units in\n"
      "  the window and each quarter within 5 %; a running agent says why not in\n"
      "  wattprobe_workload_energy_per_unit_stability_info and in its log.\n";
  return out;
}

}  // namespace wattprobe
