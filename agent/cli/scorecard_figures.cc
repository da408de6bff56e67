#include "agent/cli/scorecard_figures.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace wattprobe {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;

double intensity_per_joule(const PeriodFigures& f) {
  return f.energy_joules > 0 ? f.operational_grams / f.energy_joules : 0;
}

}  // namespace

double PeriodFigures::intensity_g_per_kwh() const {
  return intensity_per_joule(*this) * kJoulesPerKwh;
}

std::optional<double> PeriodFigures::measured_share() const {
  if (component_joules <= 0) return std::nullopt;
  return measured_joules / component_joules;
}

std::map<std::string, double> PeriodFigures::grams_per_unit() const {
  std::map<std::string, double> out;
  for (const auto& [unit, count] : units) {
    if (count > 0 && !partial_units) out[unit] = grams() / count;
  }
  if (out.empty() && cpu_seconds > 0) out["cpu_hour"] = grams() / (cpu_seconds / 3600);
  return out;
}

void PeriodFigures::add(const PeriodFigures& o) {
  operational_grams += o.operational_grams;
  embodied_grams += o.embodied_grams;
  energy_joules += o.energy_joules;
  component_joules += o.component_joules;
  measured_joules += o.measured_joules;
  cpu_seconds += o.cpu_seconds;
  for (const auto& [unit, count] : o.units) units[unit] += count;
}

Decomposition decompose(const PeriodFigures& before, const PeriodFigures& after) {
  Decomposition d;
  d.change_grams = after.grams() - before.grams();
  if (before.grams() > 0) d.change_percent = 100 * d.change_grams / before.grams();
  d.energy_term = (after.energy_joules - before.energy_joules) * intensity_per_joule(before);
  d.intensity_term = (after.operational_grams - before.operational_grams) - d.energy_term;
  d.embodied_term = after.embodied_grams - before.embodied_grams;
  return d;
}

std::vector<std::string> drivers_by_grams(const std::vector<GroupFigures>& groups, std::size_t n) {
  std::vector<const GroupFigures*> order;
  for (const auto& g : groups) {
    if (g.change.change_grams != 0) order.push_back(&g);
  }
  std::stable_sort(order.begin(), order.end(), [](const GroupFigures* a, const GroupFigures* b) {
    return std::fabs(a->change.change_grams) > std::fabs(b->change.change_grams);
  });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) out.push_back(order[i]->group);
  return out;
}

std::vector<std::string> drivers_by_percent(const std::vector<GroupFigures>& groups,
                                            std::size_t n) {
  std::vector<const GroupFigures*> order;
  for (const auto& g : groups) {
    if (g.change.change_percent && *g.change.change_percent != 0) order.push_back(&g);
  }
  std::stable_sort(order.begin(), order.end(), [](const GroupFigures* a, const GroupFigures* b) {
    return std::fabs(*a->change.change_percent) > std::fabs(*b->change.change_percent);
  });
  std::vector<std::string> out;
  for (std::size_t i = 0; i < order.size() && i < n; ++i) out.push_back(order[i]->group);
  return out;
}

bool Scorecard::partial() const {
  return std::any_of(queries.begin(), queries.end(),
                     [](const QueryRecord& q) { return !q.warnings.empty(); });
}

void finish_scorecard(Scorecard& card) {
  card.total = GroupFigures{"total", {}, {}, {}, {}};
  std::set<std::string> reasons;
  for (auto& g : card.groups) {
    g.change = decompose(g.previous, g.current);
    card.total.current.add(g.current);
    card.total.previous.add(g.previous);
    reasons.insert(g.lower_bound.begin(), g.lower_bound.end());
  }
  card.total.change = decompose(card.total.previous, card.total.current);
  for (bool current : {true, false}) {
    PeriodFigures& total = current ? card.total.current : card.total.previous;
    total.partial_units = std::any_of(card.groups.begin(), card.groups.end(), [&](const auto& g) {
      const PeriodFigures& f = current ? g.current : g.previous;
      return f.units.empty() && f.grams() > 0;
    });
  }
  card.total.lower_bound.assign(reasons.begin(), reasons.end());
  std::stable_sort(card.groups.begin(), card.groups.end(),
                   [](const GroupFigures& a, const GroupFigures& b) {
                     if (a.current.grams() != b.current.grams()) {
                       return a.current.grams() > b.current.grams();
                     }
                     return a.group < b.group;
                   });
}

}  // namespace wattprobe
