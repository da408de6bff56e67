#include "agent/tick/energy_meter.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "agent/base/log.h"
#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

std::string socket_text(int socket) {
  return socket < 0 ? std::string() : " socket " + std::to_string(socket);
}

}  // namespace

uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t modulus) {
  if (cur >= prev) return cur - prev;
  // Wrapped: the hardware went past modulus-1 to 0 (Kepler's energy_zone.go does the same for
  // max_energy_range_uj). With modulus 0 unsigned arithmetic wraps at 2^64.
  if (modulus == 0) return cur - prev;
  return (modulus - prev) + cur;
}

EnergyMeter::EnergyMeter(std::vector<std::unique_ptr<EnergySource>> sources,
                         std::vector<std::unique_ptr<EnergySource>> standby,
                         const std::vector<StalledAtStart>& stalled, StallPolicy policy)
    : sources_(std::move(sources)), standby_(std::move(standby)), policy_(policy) {
  for (const auto& s : sources_) all_.push_back(s.get());
  chosen_count_ = all_.size();
  for (const auto& s : standby_) all_.push_back(s.get());
  for (const StalledAtStart& s : stalled) {
    bool measured = true;
    for (const EnergySource* source : all_) {
      if (source->name() == s.source) measured = source->measured();
    }
    auto [it, fresh] = watches_.try_emplace({s.source, s.domain, s.socket},
                                            Watch{StallDetector(policy_), s.keys, measured});
    if (it->second.detector.mark_stalled() != StallDetector::Change::stalled) continue;
    ++stalls_[{s.source, s.domain}];
    log_printf(
        "%s %s%s (%s) is stalled: it did not advance in the start-up check "
        "while the CPUs were busy; its energy comes from the next source that has %s",
        s.source.c_str(), s.domain.c_str(), socket_text(s.socket).c_str(), s.keys.c_str(),
        s.domain.c_str());
  }
}

std::vector<EnergyMeter::Total> EnergyMeter::totals() const {
  std::vector<Total> out;
  out.reserve(rows_.size());
  for (const auto& [key, row] : rows_) {
    const DomainEnergy& e = row.energy;
    out.push_back({e.source, e.domain, e.socket, e.total_joules, e.measured});
  }
  return out;
}

void EnergyMeter::restore_total(const std::string& source, const std::string& domain, int socket,
                                double joules, bool measured) {
  auto& row = rows_[{source, domain, socket}].energy;
  row.source = source;
  row.domain = domain;
  row.socket = socket;
  row.total_joules = joules;
  row.measured = measured;
}

bool EnergyMeter::stalled(const std::string& source, const std::string& domain, int socket) const {
  auto it = watches_.find({source, domain, socket});
  return it != watches_.end() && it->second.detector.stalled();
}

NodeEnergy EnergyMeter::tick(double seconds, std::optional<double> busy_cpus) {
  NodeEnergy out;
  out.seconds = first_tick_ ? 0 : seconds;

  // 1. Every source's readings, summed per row. Every counter is primed, used or not, so a
  //    source can stand in for a stalled one from the tick it is needed.
  std::vector<Candidate> candidates;
  std::map<RowKey, std::size_t> candidate_of;
  for (std::size_t si = 0; si < all_.size(); ++si) {
    EnergySource& source = *all_[si];
    std::string name(source.name());
    Sample sample = source.sample();
    for (const Error& e : sample.errors) ++errors_[{name, std::string(to_string(e.kind))}];
    for (const Reading& r : sample.readings) {
      double joules = 0;
      bool primed = true;
      bool advanced = false;
      if (r.kind == ReadingKind::power_gauge) {
        if (!(r.watts >= 0) || r.watts > 1e6) {
          ++errors_[{name, "malformed"}];
          continue;
        }
        joules = first_tick_ ? 0 : r.watts * seconds;
      } else {
        if (r.modulus != 0 && r.raw >= r.modulus) {
          // A source should have caught this; never let it become a huge delta.
          ++errors_[{name, "malformed"}];
          continue;
        }
        Counter& c = counters_[{name, r.key}];
        primed = c.primed;
        if (c.primed && r.reset_when_lower && r.raw < c.raw) {
          // Restarted (driver reload): what it counted since is unknown to within a tick, and
          // a wrap would be a huge figure; count nothing and start again from here. A restart
          // is movement, not a stall.
          ++errors_[{name, "counter_reset"}];
          advanced = true;
        } else if (c.primed) {
          uint64_t delta = counter_delta(c.raw, r.raw, r.modulus);
          joules = static_cast<double>(delta) * r.unit_joules;
          advanced = delta != 0;
        }
        c.raw = r.raw;
        c.primed = true;
      }
      RowKey key{name, r.domain, r.socket};
      auto [it, fresh] = candidate_of.try_emplace(key, candidates.size());
      if (fresh) {
        Candidate c;
        c.key = key;
        c.source = si;
        c.measured = source.measured() && r.measured;
        c.knows_stalls = source.knows_stalls();
        c.counter = r.kind == ReadingKind::energy_counter;
        candidates.push_back(std::move(c));
      }
      Candidate& c = candidates[it->second];
      c.joules += joules;
      c.counter = c.counter && r.kind == ReadingKind::energy_counter;
      c.primed = c.primed && primed;
      c.advanced = c.advanced || advanced;
      c.known_stalled = c.known_stalled || r.known_stalled;
      c.keys.push_back(r.key);
    }
  }

  // 2. The stall detectors. A row is usable only when it is not stalled at either end of the
  //    tick (see the class comment on the tick a counter recovers in).
  std::vector<bool> usable(candidates.size(), true);
  std::vector<std::pair<std::size_t, StallDetector::Change>> changes;
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    const auto& [source, domain, socket] = c.key;
    const bool watched = c.counter && (c.knows_stalls || counter_must_advance(domain));
    if (!watched) continue;
    auto [it, fresh] =
        watches_.try_emplace(c.key, Watch{StallDetector(policy_), join(c.keys, ","), c.measured});
    Watch& w = it->second;
    const bool was_stalled = w.detector.stalled();
    if (c.known_stalled) {
      // A source that knows its counter stopped (the `host` source's writer went away) needs no
      // CPU evidence; the same stalled state, counter and stand-in follow.
      if (w.detector.mark_stalled() == StallDetector::Change::stalled) {
        changes.emplace_back(i, StallDetector::Change::stalled);
        ++stalls_[{source, domain}];
      }
    } else if (c.knows_stalls) {
      // Its own word decides: moving again is the only change the meter still looks for.
      if (c.primed && c.advanced &&
          w.detector.observe(true, out.seconds, busy_cpus) == StallDetector::Change::recovered) {
        changes.emplace_back(i, StallDetector::Change::recovered);
      }
    } else if (c.primed) {
      auto change = w.detector.observe(c.advanced, out.seconds, busy_cpus);
      if (change != StallDetector::Change::none) changes.emplace_back(i, change);
      if (change == StallDetector::Change::stalled) ++stalls_[{source, domain}];
    }
    usable[i] = !was_stalled && !w.detector.stalled();
  }

  // 3. Which rows give the tick's energy: chosen sources in priority order, a (domain, socket)
  //    from the first usable row that has it; then standby sources for what stalled rows left.
  using Place = std::pair<std::string, int>;  // domain, socket
  std::set<Place> claimed, wanting;
  std::vector<std::size_t> used;
  auto place = [&](std::size_t i) {
    return Place{std::get<1>(candidates[i].key), std::get<2>(candidates[i].key)};
  };
  for (std::size_t i = 0; i < candidates.size() && candidates[i].source < chosen_count_; ++i) {
    Place p = place(i);
    if (claimed.count(p)) continue;
    if (!usable[i]) {
      wanting.insert(p);
      continue;
    }
    claimed.insert(p);
    wanting.erase(p);
    used.push_back(i);
  }
  auto take_domain = [&](std::size_t i) {
    // A host-wide stand-in (socket -1, the `model` estimate) covers every socket of its domain:
    // the domain's rows that still work step aside, or they would be counted twice.
    const std::string& domain = std::get<1>(candidates[i].key);
    std::erase_if(used, [&](std::size_t u) { return place(u).first == domain; });
    std::erase_if(wanting, [&](const Place& p) { return p.first == domain; });
    used.push_back(i);
  };
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (candidates[i].source < chosen_count_ || !usable[i] || wanting.empty()) continue;
    Place p = place(i);
    if (p.second < 0 && std::any_of(wanting.begin(), wanting.end(),
                                    [&](const Place& w) { return w.first == p.first; })) {
      take_domain(i);
    } else if (wanting.erase(p)) {
      used.push_back(i);
    }
  }
  // A stalled domain no other source has (psys, say) leaves the host without its total: the
  // estimate's package row stands in for the host then, rather than no energy at all.
  if (!wanting.empty()) {
    bool host_left = std::any_of(used.begin(), used.end(), [&](std::size_t u) {
      const std::string& d = place(u).first;
      return d == "platform" || d == "psys" || d == "package" || d == "dram" || d == "gpu";
    });
    for (std::size_t i = 0; !host_left && i < candidates.size(); ++i) {
      if (candidates[i].source >= chosen_count_ && usable[i] && place(i).first == "package") {
        take_domain(i);
        host_left = true;
      }
    }
  }

  // 4. The rows: used ones count, the others keep their totals and report no power.
  std::vector<bool> is_used(candidates.size(), false);
  for (std::size_t u : used) is_used[u] = true;
  for (auto& [key, row] : rows_) {
    row.energy.joules = 0;
    row.energy.watts = 0;
  }
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    const Candidate& c = candidates[i];
    if (!is_used[i]) {
      if (auto it = rows_.find(c.key); it != rows_.end()) it->second.in_use = false;
      continue;
    }
    RowState& row = rows_[c.key];
    DomainEnergy& e = row.energy;
    std::tie(e.source, e.domain, e.socket) = c.key;
    e.measured = c.measured;
    e.joules = c.joules;
    e.total_joules += c.joules;
    e.watts = out.seconds > 0 ? c.joules / out.seconds : 0;
    row.in_use = true;
    out.domains.push_back(e);
  }

  for (const auto& [i, change] : changes) {
    const auto& [source, domain, socket] = candidates[i].key;
    const std::string where = source + " " + domain + socket_text(socket) + " (" +
                              watches_.at(candidates[i].key).keys + ")";
    if (change == StallDetector::Change::recovered) {
      log_printf(
          "%s recovered: the counter moves again; measured from it from the "
          "next tick",
          where.c_str());
      continue;
    }
    std::string stand_in = "no other source has " + domain + ", so it reports none";
    for (std::size_t u : used) {
      const Candidate& c = candidates[u];
      if (std::get<1>(c.key) == domain &&
          (std::get<2>(c.key) == socket || std::get<2>(c.key) < 0)) {
        stand_in = "it now comes from " + std::get<0>(c.key) +
                   (c.measured ? "" : " (an estimate, measured=\"false\")");
        break;
      }
    }
    const Watch& w = watches_.at(candidates[i].key);
    log_printf(
        "%s stalled: no change over %d ticks (%.1f s) while the CPUs were "
        "busy; %s",
        where.c_str(), w.detector.busy_ticks(), w.detector.busy_seconds(), stand_in.c_str());
  }
  first_tick_ = false;
  return out;
}

void EnergyMeter::append_families(std::vector<Family>& out) const {
  Family energy{"wattprobe_node_energy_joules_total",
                "Energy the node used, by energy source and domain, since the agent's first start "
                "(continued across restarts from the checkpoint).",
                MetricType::counter,
                {}};
  Family power{
      "wattprobe_node_power_watts", "Mean power over the last tick.", MetricType::gauge, {}};
  Family info{"wattprobe_energy_source_info",
              "Energy sources by domain: 1 while the agent takes energy from it (state=\"ok\"), "
              "0 when a counter of it is stalled (state=\"stalled\") or it stands by "
              "(state=\"standby\"); measured=\"false\" marks an estimate, not a measurement.",
              MetricType::gauge,
              {}};
  struct Provenance {
    bool measured = true;
    bool in_use = false;
    bool stalled = false;
  };
  std::map<std::pair<std::string, std::string>, Provenance> provenance;
  for (const auto& [key, row] : rows_) {
    const DomainEnergy& e = row.energy;
    std::string socket = e.socket < 0 ? "" : std::to_string(e.socket);
    Labels labels{{"source", e.source}, {"domain", e.domain}, {"socket", socket}};
    energy.series.push_back({labels, e.total_joules});
    power.series.push_back({labels, e.watts});
    Provenance& p = provenance[{e.source, e.domain}];
    p.measured = e.measured;
    p.in_use = p.in_use || row.in_use;
  }
  Family stalls{"wattprobe_agent_source_stalls_total",
                "Times a counter that must move stood still while the CPUs were busy (stalled; "
                "its energy then comes from the next source), by source and domain.",
                MetricType::counter,
                {}};
  std::set<std::pair<std::string, std::string>> watched;
  for (const auto& [key, w] : watches_) {
    const auto& [source, domain, socket] = key;
    watched.insert({source, domain});
    if (!w.detector.stalled()) continue;
    // A row stalled from the start was never used, so only its watch knows it.
    Provenance& p = provenance[{source, domain}];
    if (!rows_.count(key)) p.measured = w.measured;
    p.stalled = true;
  }
  for (const auto& [key, p] : provenance) {
    std::string state = p.stalled ? "stalled" : p.in_use ? "ok" : "standby";
    info.series.push_back({{{"source", key.first},
                            {"domain", key.second},
                            {"measured", p.measured ? "true" : "false"},
                            {"state", state}},
                           state == "ok" ? 1.0 : 0.0});
  }
  for (const auto& key : watched) {
    auto it = stalls_.find(key);
    stalls.series.push_back({{{"source", key.first}, {"domain", key.second}},
                             it == stalls_.end() ? 0.0 : static_cast<double>(it->second)});
  }
  Family errors{"wattprobe_agent_collector_errors_total",
                "Failed reads by collector and reason (absent, permission, malformed, transient, "
                "unsupported, counter_reset).",
                MetricType::counter,
                {}};
  for (const auto& [key, n] : errors_) {
    errors.series.push_back(
        {{{"collector", key.first}, {"reason", key.second}}, static_cast<double>(n)});
  }
  out.push_back(std::move(energy));
  out.push_back(std::move(power));
  out.push_back(std::move(info));
  out.push_back(std::move(stalls));
  out.push_back(std::move(errors));
}

}  // namespace wattprobe
