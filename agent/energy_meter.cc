#include "agent/energy_meter.h"

#include <set>

namespace wattprobe {

uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t modulus) {
  if (cur >= prev) return cur - prev;
  // Wrapped: the hardware went past modulus-1 to 0 (Kepler's energy_zone.go does the same for
  // max_energy_range_uj). With modulus 0 unsigned arithmetic wraps at 2^64.
  if (modulus == 0) return cur - prev;
  return (modulus - prev) + cur;
}

EnergyMeter::EnergyMeter(std::vector<std::unique_ptr<EnergySource>> sources)
    : sources_(std::move(sources)) {}

std::vector<EnergyMeter::Total> EnergyMeter::totals() const {
  std::vector<Total> out;
  out.reserve(rows_.size());
  for (const auto& [key, row] : rows_)
    out.push_back({row.source, row.domain, row.socket, row.total_joules, row.measured});
  return out;
}

void EnergyMeter::restore_total(const std::string& source, const std::string& domain, int socket,
                                double joules, bool measured) {
  auto& row = rows_[{source, domain, socket}];
  row.source = source;
  row.domain = domain;
  row.socket = socket;
  row.total_joules = joules;
  row.measured = measured;
}

NodeEnergy EnergyMeter::tick(double seconds) {
  NodeEnergy out;
  out.seconds = first_tick_ ? 0 : seconds;
  std::set<std::pair<std::string, int>> claimed;  // {domain, socket} given by a better source
  std::map<RowKey, double> tick_joules;
  std::vector<RowKey> order;

  for (auto& source : sources_) {
    std::string name(source->name());
    Sample sample = source->sample();
    for (const Error& e : sample.errors) ++errors_[{name, std::string(to_string(e.kind))}];

    std::set<std::pair<std::string, int>> mine;
    for (const Reading& r : sample.readings) {
      if (claimed.count({r.domain, r.socket})) continue;
      double joules = 0;
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
        if (c.primed && r.reset_when_lower && r.raw < c.raw) {
          // Restarted (driver reload): what it counted since is unknown to within a tick, and
          // a wrap would be a huge figure; count nothing and start again from here.
          ++errors_[{name, "counter_reset"}];
        } else if (c.primed) {
          joules = static_cast<double>(counter_delta(c.raw, r.raw, r.modulus)) * r.unit_joules;
        }
        c.raw = r.raw;
        c.primed = true;
      }
      mine.insert({r.domain, r.socket});
      RowKey key{name, r.domain, r.socket};
      auto [it, fresh] = tick_joules.try_emplace(key, 0.0);
      if (fresh) order.push_back(key);
      it->second += joules;
      auto& row = rows_[key];
      row.source = name;
      row.domain = r.domain;
      row.socket = r.socket;
      row.measured = source->measured();
    }
    claimed.insert(mine.begin(), mine.end());
  }

  for (const RowKey& key : order) {
    DomainEnergy& row = rows_[key];
    row.joules = tick_joules[key];
    row.total_joules += row.joules;
    row.watts = out.seconds > 0 ? row.joules / out.seconds : 0;
    out.domains.push_back(row);
  }
  // Rows that gave nothing this tick keep their total but report no power.
  for (auto& [key, row] : rows_) {
    if (!tick_joules.count(key)) {
      row.joules = 0;
      row.watts = 0;
    }
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
              "Energy sources in use; measured=\"false\" marks an estimate, not a measurement.",
              MetricType::gauge,
              {}};
  std::set<std::tuple<std::string, std::string, bool>> infos;
  for (const auto& [key, row] : rows_) {
    std::string socket = row.socket < 0 ? "" : std::to_string(row.socket);
    Labels labels{{"source", row.source}, {"domain", row.domain}, {"socket", socket}};
    energy.series.push_back({labels, row.total_joules});
    power.series.push_back({labels, row.watts});
    infos.insert({row.source, row.domain, row.measured});
  }
  for (const auto& [source, domain, measured] : infos) {
    info.series.push_back(
        {{{"source", source}, {"domain", domain}, {"measured", measured ? "true" : "false"}}, 1});
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
  out.push_back(std::move(errors));
}

}  // namespace wattprobe
