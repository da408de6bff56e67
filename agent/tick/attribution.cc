#include "agent/tick/attribution.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>

#include "agent/base/log.h"

namespace wattprobe {

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

std::string host_basis(const NodeEnergy& energy) {
  std::string basis;
  for (const DomainEnergy& r : energy.domains) {
    if (r.domain == "platform") return "platform";
    if (r.domain == "psys") {
      basis = "psys";
    } else if (basis.empty() &&
               (r.domain == "package" || r.domain == "dram" || r.domain == "gpu")) {
      basis = "components";
    }
  }
  return basis;
}

Attribution::Attribution(AttributionOptions options)
    : options_(std::move(options)),
      processes_(options_.process_metrics_top, options_.workload_expiry) {}

std::size_t Attribution::pair_index(const std::string& source, const std::string& domain) {
  auto [it, inserted] = pair_of_.try_emplace({source, domain}, pairs_.size());
  if (inserted) pairs_.push_back({source, domain, -1});
  return it->second;
}

std::size_t Attribution::row_index(const DomainEnergy& d) {
  auto [it, inserted] = row_of_.try_emplace({d.source, d.domain, d.socket}, rows_.size());
  if (inserted) {
    Row row;
    row.pair = pair_index(d.source, d.domain);
    rows_.push_back(std::move(row));
  }
  return it->second;
}

uint32_t Attribution::slot_for(const WorkloadId& id) {
  auto [it, inserted] = slot_of_.try_emplace(id, 0);
  if (inserted) {
    uint32_t s;
    if (free_slots_.empty()) {
      s = static_cast<uint32_t>(slots_.size());
      slots_.emplace_back();
      cells_.resize(slots_.size() * stride_);
      cell_labels_.resize(cells_.size());
    } else {
      s = free_slots_.back();
      free_slots_.pop_back();
    }
    slots_[s].id = &it->first;  // node keys of an unordered_map never move
    slots_[s].used = true;
    it->second = s;
  }
  return it->second;
}

void Attribution::free_slot(uint32_t s) {
  if (!run_base_.empty()) run_base_.erase(*slots_[s].id);
  slot_of_.erase(slot_of_.find(*slots_[s].id));
  slots_[s] = Slot{};
  std::fill_n(cells_of(s), stride_, Cell{});
  std::fill_n(cell_labels_.begin() + static_cast<std::ptrdiff_t>(s * stride_), stride_,
              CellLabels{});
  free_slots_.push_back(s);
}

void Attribution::widen_cells() {
  if (pairs_.size() <= stride_) return;
  std::size_t stride = pairs_.size() + 2;  // a source or two more without another copy
  std::vector<Cell> wider(slots_.size() * stride);
  std::vector<CellLabels> wider_labels(wider.size());
  for (std::size_t s = 0; s < slots_.size(); ++s) {
    const auto from = static_cast<std::ptrdiff_t>(s * stride_);
    const auto to = static_cast<std::ptrdiff_t>(s * stride);
    std::copy_n(cells_.begin() + from, stride_, wider.begin() + to);
    std::move(cell_labels_.begin() + from, cell_labels_.begin() + from + std::ptrdiff_t(stride_),
              wider_labels.begin() + to);
  }
  cells_ = std::move(wider);
  cell_labels_ = std::move(wider_labels);
  stride_ = stride;
}

EnergyTick Attribution::apply(const NodeEnergy& energy, const CpuTick& cpu, int64_t now_ms,
                              const GpuTick* gpu) {
  EnergyTick tick;
  tick.end_ms = now_ms;
  tick.seconds = energy.seconds;
  records_lost_ += cpu.records_lost;
  workloads_dropped_ += cpu.workloads_dropped;

  const std::size_t n = cpu.workloads.size();
  // Workloads that used a GPU in this tick but no CPU come after the CPU's: [n, total).
  std::vector<const WorkloadId*> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = &cpu.workloads[i].id;
  std::unordered_map<WorkloadId, std::size_t, WorkloadIdHash> index_of;
  if (gpu && !gpu->devices.empty()) {
    for (std::size_t i = 0; i < n; ++i) index_of.emplace(cpu.workloads[i].id, i);
    for (const GpuDeviceTick& dev : gpu->devices) {
      for (const GpuWorkloadShare& s : dev.shares) {
        if (index_of.emplace(s.id, ids.size()).second) ids.push_back(&s.id);
      }
    }
  }
  const std::size_t total = ids.size();

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

  tick_rows_.resize(energy.domains.size());
  for (std::size_t r = 0; r < energy.domains.size(); ++r)
    tick_rows_[r] = row_index(energy.domains[r]);
  widen_cells();

  // Workloads that did not run show zero power; those that did sum their socket rows below.
  for (Cell& c : cells_) c.watts = 0;
  std::vector<uint32_t> slot(total);
  for (std::size_t i = 0; i < total; ++i) {
    slot[i] = slot_for(*ids[i]);
    Slot& t = slots_[slot[i]];
    if (i < n) t.cpu_seconds += static_cast<double>(cpu.workloads[i].cpu_ns) * 1e-9;
    t.last_seen_ms = now_ms;
    if (t.first_seen_ms == 0 || t.ended) {
      // The run began within this tick: its start is the best bound the agent has.
      t.first_seen_ms = now_ms - static_cast<int64_t>(std::llround(energy.seconds * 1000));
      t.ended = false;
    }
  }

  std::vector<double> host_joules(total, 0.0);
  std::vector<double> host_cpu_joules(n, 0.0);      // without GPU energy, for per-process CPU split
  std::vector<double> host_gpu_joules(total, 0.0);  // the gpu domains' part of host_joules
  std::vector<double> share(total);
  std::vector<bool> in_host = host_sum_domains(energy);
  // The wall (a platform meter) holds the components (package, dram, GPUs): with both, the
  // components are split first and the platform row is their shares plus a split of the rest
  // (docs/methodology.md "The wall"). Without components, the platform row is split by CPU time.
  auto is_component = [](const std::string& domain) {
    return domain == "package" || domain == "dram" || domain == "gpu";
  };
  std::size_t platform_row = energy.domains.size();
  bool components = false;
  for (std::size_t r = 0; r < energy.domains.size(); ++r) {
    const std::string& domain = energy.domains[r].domain;
    components = components || is_component(domain);
    if (domain == "platform") platform_row = platform_row == energy.domains.size() ? r : SIZE_MAX;
  }
  const bool wall_rule = components && platform_row < energy.domains.size();
  std::vector<std::size_t> order;
  order.reserve(energy.domains.size());
  for (std::size_t r = 0; r < energy.domains.size(); ++r)
    if (!wall_rule || r != platform_row) order.push_back(r);
  if (wall_rule) order.push_back(platform_row);
  std::vector<double> comp_total(wall_rule ? total : 0, 0.0), comp_dynamic(comp_total.size(), 0.0);
  double comp_measured = 0, comp_idle = 0, comp_unattributed = 0, comp_unattributed_dynamic = 0;
  platform_rest_watts_ = 0;
  for (std::size_t r : order) {
    const DomainEnergy& d = energy.domains[r];
    const bool wall = wall_rule && r == platform_row;
    const bool component = wall_rule && is_component(d.domain);
    Row& row = rows_[tick_rows_[r]];
    pairs_[row.pair].measured = d.measured;
    IdlePowerEstimator& est = row.idle;
    if (auto it = options_.idle_watts.find(d.domain); it != options_.idle_watts.end()) {
      est.set_override(it->second);
    }
    const bool is_gpu = d.domain == "gpu";
    const GpuDeviceTick* dev = is_gpu && gpu ? gpu->find(d.source, d.socket) : nullptr;
    // A GPU's idle power is learned against its own utilisation, never the CPU's.
    double row_utilisation = is_gpu ? (dev ? dev->utilisation : -1) : utilisation;
    // The wall's rest (what the components do not draw) is what its idle power is learned on.
    double measured = d.joules;
    if (wall) {
      const double platform = measured;
      measured = std::max(platform, comp_measured);
      platform_shortfall_ += measured - platform;  // the wall read below its own parts
      const double rest = measured - comp_measured;
      platform_rest_watts_ = energy.seconds > 0 ? rest / energy.seconds : 0;
    }
    const double row_watts = wall ? platform_rest_watts_ : d.watts;
    if (energy.seconds > 0 && row_utilisation >= 0) est.observe(row_utilisation, row_watts);

    double idle = 0;
    std::optional<double> idle_watts = est.idle_watts();
    const double split = wall ? measured - comp_measured : measured;  // what this row divides
    if (idle_watts && energy.seconds > 0) idle = std::min(split, *idle_watts * energy.seconds);
    row.idle_watts = idle_watts.value_or(0);
    row.method = est.method();
    double dynamic = split - idle;
    double unattributed = 0;
    std::fill(share.begin(), share.end(), 0.0);

    if (wall) {
      // The rest's dynamic part follows each workload's dynamic component energy in the tick;
      // a tick in which nobody used energy gives all of it to idle.
      double by_workloads = 0;
      for (double x : comp_dynamic) by_workloads += x;
      const double used = by_workloads + comp_unattributed_dynamic;
      if (by_workloads > 0) {
        for (std::size_t i = 0; i < total; ++i) share[i] = dynamic * (comp_dynamic[i] / used);
        unattributed = dynamic * (comp_unattributed_dynamic / used);
      } else {
        idle += dynamic;
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
      // Each workload's platform energy: its components and its share of the rest.
      for (std::size_t i = 0; i < total; ++i) share[i] += comp_total[i];
      idle += comp_idle;
      unattributed += comp_unattributed;
    } else if (is_gpu) {
      if (dev && dev->method != "none") {
        double given = 0;
        for (const GpuWorkloadShare& s : dev->shares) {
          double j = dynamic * s.share;
          share[index_of.at(s.id)] += j;
          given += j;
          auto& by = gpu_split_joules_[s.id][{dev->source, dev->device, dev->method}];
          by += j;
          if (options_.process_metrics_top > 0 && (in_host[r] || component))
            processes_.add_gpu(s.pid, s.comm, s.id.workload, j, now_ms);
        }
        unattributed = std::max(0.0, dynamic - given);  // processes gone before they were read
      } else {
        unattributed = dynamic;  // no per-process signal: never split a GPU by CPU time
      }
      if (component) {
        for (std::size_t i = 0; i < total; ++i) comp_dynamic[i] += share[i];
        comp_unattributed_dynamic += unattributed;
      }
      if (options_.idle_policy != IdlePolicy::separate && dev && idle > 0 && !dev->shares.empty()) {
        double share_sum = 0;
        for (const GpuWorkloadShare& s : dev->shares) share_sum += s.share;
        if (share_sum > 0) {
          for (const GpuWorkloadShare& s : dev->shares) {
            double j = options_.idle_policy == IdlePolicy::even
                           ? idle / static_cast<double>(dev->shares.size())
                           : idle * (s.share / share_sum);
            share[index_of.at(s.id)] += j;
          }
          idle = 0;
        }
      }
    } else {
      if (all_weight > 0) {
        for (std::size_t i = 0; i < n; ++i) share[i] = dynamic * (weight[i] / all_weight);
        unattributed = dynamic * (unaccounted / all_weight);
      } else {
        unattributed = dynamic;  // energy used while accounting saw no task: nobody to give it to
      }
      if (component) {
        for (std::size_t i = 0; i < total; ++i) comp_dynamic[i] += share[i];
        comp_unattributed_dynamic += unattributed;
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
    }

    double sum = idle + unattributed;
    bool bad_share = false;
    for (double x : share) {
      sum += x;
      bad_share = bad_share || x < 0 || !std::isfinite(x);
    }
    double gap = sum - measured;
    if (std::fabs(gap) > 1e-9 * std::max(std::fabs(measured), 1e-12) || bad_share) {
      ++violations_;
      log_printf(
          "conservation violated for domain %s (source %s, socket %d): parts "
          "sum to %.9g J, measured %.9g J, gap %.3g J",
          d.domain.c_str(), d.source.c_str(), d.socket, sum, measured, gap);
    }

    if (component) {
      comp_measured += measured;
      comp_idle += idle;
      comp_unattributed += unattributed;
      for (std::size_t i = 0; i < total; ++i) comp_total[i] += share[i];
    }
    idle_total_[d.domain] += idle;
    unattributed_total_[d.domain] += unattributed;
    const double per_second = energy.seconds > 0 ? 1.0 / energy.seconds : 0.0;
    for (std::size_t i = 0; i < total; ++i) {
      // GPU series only for the workloads that used the GPU.
      if ((i >= n || is_gpu) && share[i] == 0) continue;
      Cell& c = cells_of(slot[i])[row.pair];
      c.joules += share[i];
      // Several socket rows of one domain add up to the workload's power in that domain.
      c.watts += share[i] * per_second;
      c.present = true;
    }
    // With the wall, the GPUs' shares are inside each workload's platform share: the GPU part
    // of the host figure is theirs, as it is where the GPUs are summed themselves.
    if (is_gpu && component) {
      for (std::size_t i = 0; i < total; ++i) host_gpu_joules[i] += share[i];
      tick.idle_gpu_joules += idle;
      tick.unattributed_gpu_joules += unattributed;
    }
    if (in_host[r]) {
      tick.measured_joules += measured;
      tick.idle_joules += idle;
      tick.unattributed_joules += unattributed;
      tick.measured = tick.measured && d.measured;
      for (std::size_t i = 0; i < total; ++i) host_joules[i] += share[i];
      if (wall) {
        // The wall's share holds the workload's GPU energy, which its GPU processes already
        // have (add_gpu above): its processes split the rest by CPU time.
        for (std::size_t i = 0; i < n; ++i)
          host_cpu_joules[i] += std::max(0.0, share[i] - host_gpu_joules[i]);
      } else if (!is_gpu) {
        for (std::size_t i = 0; i < n; ++i) host_cpu_joules[i] += share[i];
      } else {
        for (std::size_t i = 0; i < total; ++i) host_gpu_joules[i] += share[i];
        tick.idle_gpu_joules += idle;
        tick.unattributed_gpu_joules += unattributed;
      }
    }
  }

  if (options_.process_metrics_top > 0) processes_.add(cpu, host_cpu_joules, now_ms);

  host_total_ += tick.measured_joules;
  host_watts_ = energy.seconds > 0 ? tick.measured_joules / energy.seconds : 0;
  host_basis_ = host_basis(energy);
  host_measured_ = tick.measured;
  for (Slot& t : slots_) t.host_watts = 0;
  tick.workloads.reserve(total);
  for (std::size_t i = 0; i < total; ++i) {
    uint64_t cpu_ns = i < n ? cpu.workloads[i].cpu_ns : 0;
    double host_share = cpu.capacity_ns > 0
                            ? static_cast<double>(cpu_ns) / static_cast<double>(cpu.capacity_ns)
                            : 0;
    tick.workloads.push_back(
        {*ids[i], host_joules[i], std::min(host_share, 1.0), cpu_ns, host_gpu_joules[i]});
    slots_[slot[i]].host_joules += host_joules[i];
    slots_[slot[i]].host_watts = energy.seconds > 0 ? host_joules[i] / energy.seconds : 0;
  }
  if (!cpu.ended.empty()) end_runs(cpu.ended, tick);  // tick.end_ms is their end

  // Series of workloads gone for longer than the expiry leave /metrics (their totals live on
  // in the ledger).
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    if (slots_[s].used && now_ms - slots_[s].last_seen_ms > options_.workload_expiry.count()) {
      gpu_split_joules_.erase(*slots_[s].id);
      free_slot(s);
    }
  }
  forget_beyond_cap();
  return tick;
}

void Attribution::end_runs(const std::vector<WorkloadId>& ended, EnergyTick& tick) {
  for (const WorkloadId& id : ended) {
    auto found = slot_of_.find(id);
    if (found == slot_of_.end()) continue;  // expired or past the cap: its totals are gone
    Slot& t = slots_[found->second];
    if (t.ended || t.first_seen_ms == 0) continue;
    RunBase& base = run_base_[id];
    EndedWorkload e;
    e.id = id;
    e.first_seen_ms = t.first_seen_ms;
    e.last_seen_ms = t.last_seen_ms;
    e.ended_ms = tick.end_ms;
    e.cpu_seconds = std::max(0.0, t.cpu_seconds - base.cpu_seconds);
    e.host_joules = std::max(0.0, t.host_joules - base.host_joules);
    const Cell* cells = cells_of(found->second);
    base.joules.resize(pairs_.size(), 0.0);
    for (std::size_t p = 0; p < pairs_.size(); ++p) {
      if (!cells[p].present) continue;
      const double joules = cells[p].joules - base.joules[p];
      if (joules > 0) {
        e.domains.push_back({pairs_[p].source, pairs_[p].domain, joules, pairs_[p].measured != 0});
      }
      base.joules[p] = cells[p].joules;
    }
    base.cpu_seconds = t.cpu_seconds;
    base.host_joules = t.host_joules;
    t.ended = true;
    tick.ended.push_back(std::move(e));
  }
}

void Attribution::forget_beyond_cap() {
  if (slot_of_.size() <= options_.max_workloads) return;
  std::vector<std::pair<int64_t, uint32_t>> by_age;
  by_age.reserve(slot_of_.size());
  for (uint32_t s = 0; s < slots_.size(); ++s)
    if (slots_[s].used) by_age.emplace_back(slots_[s].last_seen_ms, s);
  const std::size_t excess = by_age.size() - options_.max_workloads;
  // Ties (workloads last seen in the same tick) go by name, as carbon's do, so both keep the
  // same workloads.
  auto older = [this](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return *slots_[a.second].id < *slots_[b.second].id;
  };
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(excess) - 1,
                   by_age.end(), older);
  for (std::size_t i = 0; i < excess; ++i) {
    gpu_split_joules_.erase(*slots_[by_age[i].second].id);
    free_slot(by_age[i].second);
  }
}

void Attribution::restore_workload(
    const WorkloadId& id, double cpu_seconds,
    const std::map<std::pair<std::string, std::string>, double>& joules) {
  uint32_t s = slot_for(id);
  std::vector<std::size_t> pairs;
  pairs.reserve(joules.size());
  for (const auto& [key, j] : joules) pairs.push_back(pair_index(key.first, key.second));
  widen_cells();
  slots_[s].cpu_seconds = cpu_seconds;
  Cell* cells = cells_of(s);
  std::fill_n(cells, stride_, Cell{});
  std::size_t k = 0;
  for (const auto& [key, j] : joules) cells[pairs[k++]] = Cell{j, 0, true};
}

void Attribution::restore_node(const std::string& domain, double idle_joules,
                               double unattributed_joules) {
  idle_total_[domain] = idle_joules;
  unattributed_total_[domain] = unattributed_joules;
}

AttributionTotals Attribution::totals() const {
  AttributionTotals out;
  out.workloads.reserve(slot_of_.size());
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    const Slot& t = slots_[s];
    if (!t.used) continue;
    AttributionTotals::Workload w{*t.id, t.cpu_seconds, t.last_seen_ms,  {},
                                  {},    t.host_joules, t.first_seen_ms, t.ended};
    if (auto g = gpu_split_joules_.find(*t.id); g != gpu_split_joules_.end())
      w.gpu_joules = g->second;
    const Cell* cells = cells_of(s);
    for (std::size_t p = 0; p < pairs_.size(); ++p) {
      if (cells[p].present) w.joules[{pairs_[p].source, pairs_[p].domain}] = cells[p].joules;
    }
    out.workloads.push_back(std::move(w));
  }
  out.idle_joules = idle_total_;
  out.unattributed_joules = unattributed_total_;
  out.platform_shortfall_joules = platform_shortfall_;
  out.host_joules = host_total_;
  return out;
}

void Attribution::restore(const AttributionTotals& totals) {
  for (const auto& w : totals.workloads) {
    restore_workload(w.id, w.cpu_seconds, w.joules);
    Slot& slot = slots_[slot_of_.at(w.id)];
    slot.last_seen_ms = w.last_seen_ms;
    slot.host_joules = w.host_joules;
    // A run from before the checkpoint continues: its record, when it ends, starts where it
    // began. A file from before first_seen gives the last tick as the best bound.
    slot.first_seen_ms = w.first_seen_ms != 0 ? w.first_seen_ms : w.last_seen_ms;
    slot.ended = w.ended;
    if (w.ended) {
      // Nothing ran since it ended, so its totals are still those at its end: the base of a
      // next run of the name.
      RunBase& base = run_base_[w.id];
      base.cpu_seconds = w.cpu_seconds;
      base.host_joules = w.host_joules;
      base.joules.assign(pairs_.size(), 0.0);
      for (const auto& [key, j] : w.joules) base.joules[pair_of_.at(key)] = j;
    }
    if (!w.gpu_joules.empty()) gpu_split_joules_[w.id] = w.gpu_joules;
  }
  for (const auto& [domain, j] : totals.idle_joules) idle_total_[domain] = j;
  for (const auto& [domain, j] : totals.unattributed_joules) unattributed_total_[domain] = j;
  platform_shortfall_ = totals.platform_shortfall_joules;
  host_total_ = totals.host_joules;
  forget_beyond_cap();
}

namespace {

// Label names copied into every workload series: copying a short string is cheaper than making
// one from a literal, and this runs for every series of every tick.
const std::string kDomain = "domain", kSource = "source", kMeasured = "measured", kTrue = "true",
                  kFalse = "false";

}  // namespace

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
  std::size_t present = 0;
  for (const Cell& c : cells_) present += c.present;
  energy.series.reserve(present);
  power.series.reserve(present);
  cpu.series.reserve(slot_of_.size());
  // One family at a time: each family's labels then lie together in memory, which makes both
  // building them and freeing them (when the next snapshot replaces this one) about a third
  // cheaper at 10,000 workloads than interleaving the three families.
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    if (!slots_[s].used) continue;
    const Cell* cells = cells_of(s);
    CellLabels* labels = cell_labels_.data() + s * stride_;
    for (std::size_t p = 0; p < pairs_.size(); ++p) {
      if (!cells[p].present) continue;
      const int measured = pairs_[p].measured != 0;
      if (labels[p].measured != measured) {
        Labels l = workload_labels(*slots_[s].id, 3);
        l.emplace_back(kDomain, pairs_[p].domain);
        l.emplace_back(kSource, pairs_[p].source);
        l.emplace_back(kMeasured, measured ? kTrue : kFalse);
        labels[p] = {std::move(l), measured};
      }
      energy.series.push_back({labels[p].labels, cells[p].joules});
    }
  }
  std::size_t k = 0;
  for (uint32_t s = 0; s < slots_.size(); ++s) {
    if (!slots_[s].used) continue;
    const Cell* cells = cells_of(s);
    for (std::size_t p = 0; p < pairs_.size(); ++p) {
      if (cells[p].present) power.series.push_back({energy.series[k++].labels, cells[p].watts});
    }
  }
  Family host{"wattprobe_workload_host_energy_joules_total",
              "A workload's share of the host's energy, counted once: the wall (a platform "
              "meter) where there is one, else psys, else package + dram + gpu. What carbon and "
              "the ledger use; no domains to add.",
              MetricType::counter,
              {}};
  Family host_power{"wattprobe_workload_host_power_watts",
                    "A workload's share of the host's power over the last tick, the rate of "
                    "wattprobe_workload_host_energy_joules_total.",
                    MetricType::gauge,
                    {}};
  host.series.reserve(slot_of_.size());
  host_power.series.reserve(slot_of_.size());
  for (const Slot& t : slots_) {
    if (!t.used) continue;
    if (t.cpu_labels.empty()) t.cpu_labels = workload_labels(*t.id, 0);
    cpu.series.push_back({t.cpu_labels, t.cpu_seconds});
    host.series.push_back({t.cpu_labels, t.host_joules});
    host_power.series.push_back({t.cpu_labels, t.host_watts});
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
  for (const auto& [key, r] : row_of_) {
    const auto& [source, domain, socket] = key;
    idle_power.series.push_back({{{"source", source},
                                  {"domain", domain},
                                  {"socket", socket < 0 ? "" : std::to_string(socket)},
                                  {"method", rows_[r].method}},
                                 rows_[r].idle_watts});
  }
  Family gpu{"wattprobe_workload_gpu_energy_joules_total",
             "GPU energy attributed to a workload, by GPU (source and device = the gpu domain's "
             "socket) and how the split was made (exclusive, accounting, sampled, remainder, even, "
             "busy_time); also "
             "counted in "
             "wattprobe_workload_energy_joules_total{domain=\"gpu\"}.",
             MetricType::counter,
             {}};
  for (const auto& [id, by] : gpu_split_joules_) {
    for (const auto& [key, j] : by) {
      const auto& [source, device, method] = key;
      Labels l = workload_labels(id, 3);
      l.emplace_back("source", source);
      l.emplace_back("device", std::to_string(device));
      l.emplace_back("split", method);
      gpu.series.push_back({std::move(l), j});
    }
  }
  out.push_back(std::move(energy));
  out.push_back(std::move(power));
  out.push_back(std::move(cpu));
  out.push_back(std::move(host));
  out.push_back(std::move(host_power));
  out.push_back({"wattprobe_node_host_energy_joules_total",
                 "The host's energy, counted once (E_host): the wall (a platform meter) where "
                 "there is one, else psys, else package + dram + gpu; idle + workloads + "
                 "unattributed of it. What carbon, the ledger, top and OTLP's hw.host.* use.",
                 MetricType::counter,
                 {{{}, host_total_}}});
  if (!host_basis_.empty()) {
    out.push_back(
        {"wattprobe_node_host_power_watts",
         "The host's power over the last tick (E_host's rate); basis: platform, psys or "
         "components (package + dram + gpu); measured false when any of it was the "
         "model's estimate.",
         MetricType::gauge,
         {{{{"basis", host_basis_}, {"measured", host_measured_ ? kTrue : kFalse}}, host_watts_}}});
  }
  out.push_back(
      {"wattprobe_node_platform_rest_watts",
       "What the wall (a platform meter) drew beyond the components the agent measures "
       "(package, dram, gpu) over the last tick: fans, supply loss, disks, NICs, the BMC. "
       "0 without a platform meter or without components.",
       MetricType::gauge,
       {{{}, platform_rest_watts_}}});
  out.push_back({"wattprobe_node_platform_shortfall_joules_total",
                 "Energy by which the wall read below the components inside it (sensor lag, "
                 "different sampling): those ticks' platform energy is the components'. The "
                 "platform's attributed energy = the meter's energy + this.",
                 MetricType::counter,
                 {{{}, platform_shortfall_}}});
  out.push_back(std::move(gpu));
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
