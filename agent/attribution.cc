#include "agent/attribution.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wattprobe {

std::string workload_key(const WorkloadId& id) {
  std::string k;
  k.reserve(id.workload.size() + id.kind.size() + id.namespace_.size() + id.pod.size() +
            id.container.size() + 4);
  for (const std::string* part : {&id.kind, &id.workload, &id.namespace_, &id.pod, &id.container}) {
    k += *part;
    k += '\x1f';
  }
  return k;
}

std::vector<bool> host_sum_domains(const NodeEnergy& energy) {
  auto has = [&](std::string_view d) {
    return std::any_of(energy.domains.begin(), energy.domains.end(),
                       [&](const DomainEnergy& r) { return r.domain == d; });
  };
  std::vector<bool> in(energy.domains.size(), false);
  bool platform = has("platform"), psys = has("psys");
  for (std::size_t i = 0; i < energy.domains.size(); ++i) {
    const std::string& d = energy.domains[i].domain;
    if (platform) {
      in[i] = d == "platform";
    } else if (psys) {
      in[i] = d == "psys";
    } else {
      in[i] = d == "package" || d == "dram" || d == "gpu";
    }
  }
  return in;
}

Attribution::Attribution(AttributionOptions options)
    : options_(std::move(options)),
      processes_(options_.process_metrics_top, options_.workload_expiry) {}

EnergyTick Attribution::apply(const NodeEnergy& energy, const CpuTick& cpu, int64_t now_ms) {
  EnergyTick tick;
  tick.end_ms = now_ms;
  tick.seconds = energy.seconds;
  records_lost_ += cpu.records_lost;
  workloads_dropped_ += cpu.workloads_dropped;

  const std::size_t n = cpu.workloads.size();
  // Weights: cycles where every running workload has them and nothing is unaccounted (lost
  // records have no cycles), else on-CPU nanoseconds.
  bool by_cycles = false;
  if (options_.split_by != SplitKey::cpu_time && n > 0 && cpu.unaccounted_ns == 0) {
    by_cycles = std::all_of(cpu.workloads.begin(), cpu.workloads.end(),
                            [](const WorkloadCpu& w) { return w.cycles > 0; });
  }
  std::vector<double> weight(n);
  double weight_sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    weight[i] = by_cycles ? static_cast<double>(cpu.workloads[i].cycles)
                          : static_cast<double>(cpu.workloads[i].cpu_ns);
    weight_sum += weight[i];
  }
  double unaccounted = by_cycles ? 0.0 : static_cast<double>(cpu.unaccounted_ns);
  double all_weight = weight_sum + unaccounted;

  double utilisation = -1;
  if (cpu.capacity_ns > 0) {
    uint64_t idle = std::min(cpu.idle_ns, cpu.capacity_ns);
    utilisation =
        static_cast<double>(cpu.capacity_ns - idle) / static_cast<double>(cpu.capacity_ns);
  }

  std::vector<double> host_joules(n, 0.0);
  std::vector<bool> in_host = host_sum_domains(energy);
  std::vector<WorkloadTotals*> totals(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& t = workloads_[workload_key(cpu.workloads[i].id)];
    if (t.id.kind.empty()) t.id = cpu.workloads[i].id;
    t.cpu_seconds += static_cast<double>(cpu.workloads[i].cpu_ns) * 1e-9;
    t.last_seen_ms = now_ms;
    for (auto& [k, w] : t.watts) w = 0;  // summed over this tick's socket rows below
    totals[i] = &t;
  }

  for (std::size_t r = 0; r < energy.domains.size(); ++r) {
    const DomainEnergy& row = energy.domains[r];
    RowKey key{row.source, row.domain, row.socket};
    measured_[{row.source, row.domain}] = row.measured;
    IdlePowerEstimator& est = idle_[key];
    if (auto it = options_.idle_watts.find(row.domain); it != options_.idle_watts.end()) {
      est.set_override(it->second);
    }
    if (energy.seconds > 0 && utilisation >= 0) est.observe(utilisation, row.watts);

    const double measured = row.joules;
    double idle = 0;
    if (auto w = est.idle_watts(); w && energy.seconds > 0) {
      idle = std::min(measured, *w * energy.seconds);
    }
    idle_now_[key] = {est.idle_watts().value_or(0), est.method()};
    double dynamic = measured - idle;
    double unattributed = 0;
    std::vector<double> share(n, 0.0);

    if (all_weight > 0) {
      for (std::size_t i = 0; i < n; ++i) share[i] = dynamic * (weight[i] / all_weight);
      unattributed = dynamic * (unaccounted / all_weight);
    } else {
      unattributed = dynamic;  // energy used while accounting saw no task: nobody to give it to
    }
    if (options_.idle_policy != IdlePolicy::separate && n > 0 && idle > 0) {
      if (options_.idle_policy == IdlePolicy::even) {
        for (std::size_t i = 0; i < n; ++i) share[i] += idle / static_cast<double>(n);
        idle = 0;
      } else if (weight_sum > 0) {
        for (std::size_t i = 0; i < n; ++i) share[i] += idle * (weight[i] / weight_sum);
        idle = 0;
      }
    }

    double sum = idle + unattributed;
    for (double s : share) sum += s;
    double gap = sum - measured;
    if (std::fabs(gap) > 1e-9 * std::max(std::fabs(measured), 1e-12) ||
        std::any_of(share.begin(), share.end(),
                    [](double s) { return s < 0 || !std::isfinite(s); })) {
      ++violations_;
      std::fprintf(stderr,
                   "wattprobe: conservation violated for domain %s (source %s, socket %d): parts "
                   "sum to %.9g J, measured %.9g J, gap %.3g J\n",
                   row.domain.c_str(), row.source.c_str(), row.socket, sum, measured, gap);
    }

    idle_total_[row.domain] += idle;
    unattributed_total_[row.domain] += unattributed;
    std::pair<std::string, std::string> dkey{row.source, row.domain};
    for (std::size_t i = 0; i < n; ++i) {
      totals[i]->joules[dkey] += share[i];
      // Several socket rows of one domain add up to the workload's power in that domain.
      totals[i]->watts[dkey] += energy.seconds > 0 ? share[i] / energy.seconds : 0;
    }
    if (in_host[r]) {
      tick.measured_joules += measured;
      tick.idle_joules += idle;
      tick.unattributed_joules += unattributed;
      tick.measured = tick.measured && row.measured;
      for (std::size_t i = 0; i < n; ++i) host_joules[i] += share[i];
    }
  }

  if (options_.process_metrics_top > 0) processes_.add(cpu, host_joules, now_ms);

  tick.workloads.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    double host_share = cpu.capacity_ns > 0 ? static_cast<double>(cpu.workloads[i].cpu_ns) /
                                                  static_cast<double>(cpu.capacity_ns)
                                            : 0;
    tick.workloads.push_back(
        {cpu.workloads[i].id, host_joules[i], std::min(host_share, 1.0), cpu.workloads[i].cpu_ns});
  }

  // Series of workloads gone for longer than the expiry leave /metrics (their totals live on
  // in the ledger); workloads that did not run this tick show zero power.
  for (auto it = workloads_.begin(); it != workloads_.end();) {
    if (now_ms - it->second.last_seen_ms > options_.workload_expiry.count()) {
      it = workloads_.erase(it);
      continue;
    }
    if (it->second.last_seen_ms != now_ms) {
      for (auto& [k, w] : it->second.watts) w = 0;
    }
    ++it;
  }
  return tick;
}

void Attribution::restore_workload(
    const WorkloadId& id, double cpu_seconds,
    const std::map<std::pair<std::string, std::string>, double>& joules) {
  auto& t = workloads_[workload_key(id)];
  t.id = id;
  t.cpu_seconds = cpu_seconds;
  t.joules = joules;
}

void Attribution::restore_node(const std::string& domain, double idle_joules,
                               double unattributed_joules) {
  idle_total_[domain] = idle_joules;
  unattributed_total_[domain] = unattributed_joules;
}

AttributionTotals Attribution::totals() const {
  AttributionTotals out;
  out.workloads.reserve(workloads_.size());
  for (const auto& [key, t] : workloads_)
    out.workloads.push_back({t.id, t.cpu_seconds, t.last_seen_ms, t.joules});
  out.idle_joules = idle_total_;
  out.unattributed_joules = unattributed_total_;
  return out;
}

void Attribution::restore(const AttributionTotals& totals) {
  for (const auto& w : totals.workloads) {
    restore_workload(w.id, w.cpu_seconds, w.joules);
    workloads_[workload_key(w.id)].last_seen_ms = w.last_seen_ms;
  }
  for (const auto& [domain, j] : totals.idle_joules) idle_total_[domain] = j;
  for (const auto& [domain, j] : totals.unattributed_joules) unattributed_total_[domain] = j;
}

void Attribution::append_families(std::vector<Family>& out) const {
  Family energy{"wattprobe_workload_energy_joules_total",
                "Energy attributed to a workload, by domain; source and measured tell a "
                "measurement from an estimate.",
                MetricType::counter,
                {}};
  Family power{"wattprobe_workload_power_watts",
               "Workload power over the last tick, by domain.",
               MetricType::gauge,
               {}};
  Family cpu{"wattprobe_workload_cpu_seconds_total",
             "On-CPU time of a workload's tasks.",
             MetricType::counter,
             {}};
  for (const auto& [key, t] : workloads_) {
    Labels base{{"workload", t.id.workload},
                {"kind", t.id.kind},
                {"namespace", t.id.namespace_},
                {"pod", t.id.pod},
                {"container", t.id.container}};
    cpu.series.push_back({base, t.cpu_seconds});
    for (const auto& [dk, joules] : t.joules) {
      Labels l = base;
      l.emplace_back("domain", dk.second);
      l.emplace_back("source", dk.first);
      auto m = measured_.find(dk);
      l.emplace_back("measured", m == measured_.end() || m->second ? "true" : "false");
      auto w = t.watts.find(dk);
      power.series.push_back({l, w == t.watts.end() ? 0 : w->second});
      energy.series.push_back({std::move(l), joules});
    }
  }
  Family idle{"wattprobe_node_idle_energy_joules_total",
              "Measured energy counted as idle (with --idle-attribution=separate), by domain.",
              MetricType::counter,
              {}};
  for (const auto& [d, j] : idle_total_) idle.series.push_back({{{"domain", d}}, j});
  Family unattributed{"wattprobe_node_unattributed_energy_joules_total",
                      "Measured energy no workload could be given (lost accounting records, "
                      "workloads past the cap, ticks without accounting data), by domain.",
                      MetricType::counter,
                      {}};
  for (const auto& [d, j] : unattributed_total_)
    unattributed.series.push_back({{{"domain", d}}, j});
  Family idle_power{"wattprobe_node_idle_power_watts",
                    "Idle power in force for a domain and how it was found (override, "
                    "regression, low_utilisation, none).",
                    MetricType::gauge,
                    {}};
  for (const auto& [key, v] : idle_now_) {
    const auto& [source, domain, socket] = key;
    idle_power.series.push_back({{{"source", source},
                                  {"domain", domain},
                                  {"socket", socket < 0 ? "" : std::to_string(socket)},
                                  {"method", v.second}},
                                 v.first});
  }
  out.push_back(std::move(energy));
  out.push_back(std::move(power));
  out.push_back(std::move(cpu));
  out.push_back(std::move(idle));
  out.push_back(std::move(unattributed));
  out.push_back(std::move(idle_power));
  if (options_.process_metrics_top > 0) processes_.append_families(out);
  out.push_back({"wattprobe_agent_conservation_violations_total",
                 "Ticks where a domain's parts did not sum to its measured energy.",
                 MetricType::counter,
                 {{{}, static_cast<double>(violations_)}}});
  out.push_back({"wattprobe_agent_bpf_records_lost_total",
                 "Accounting records lost to full BPF maps; their energy is unattributed.",
                 MetricType::counter,
                 {{{}, static_cast<double>(records_lost_)}}});
  out.push_back({"wattprobe_agent_workloads_dropped_total",
                 "Workloads refused by --max-workloads; their energy is unattributed.",
                 MetricType::counter,
                 {{{}, static_cast<double>(workloads_dropped_)}}});
}

}  // namespace wattprobe
