#include "agent/cli/scorecard_figures.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace wattprobe {
namespace {

constexpr double kJPerKwh = 3.6e6;

PeriodFigures figures(double kwh, double op, double emb, double cpu_hours = 0) {
  PeriodFigures f;
  f.energy_joules = kwh * kJPerKwh;
  f.operational_grams = op;
  f.embodied_grams = emb;
  f.cpu_seconds = cpu_hours * 3600;
  return f;
}

void expect_adds_up(const Decomposition& d) {
  EXPECT_NEAR(d.energy_term + d.intensity_term + d.embodied_term, d.change_grams,
              1e-9 * std::max(1.0, std::fabs(d.change_grams)));
}

TEST(ScorecardDecomposition, SplitsIntoEnergyIntensityAndEmbodied) {
  // 100 kWh at 300 g/kWh, then 120 kWh at 333.3 g/kWh; embodied 500 → 600 g.
  Decomposition d = decompose(figures(100, 30000, 500), figures(120, 40000, 600));
  EXPECT_DOUBLE_EQ(d.change_grams, 40600 - 30500);
  EXPECT_NEAR(d.energy_term, 20 * 300, 1e-6);                        // ΔE × I_before
  EXPECT_NEAR(d.intensity_term, 120 * (40000.0 / 120 - 300), 1e-6);  // E_after × ΔI
  EXPECT_DOUBLE_EQ(d.embodied_term, 100);
  ASSERT_TRUE(d.change_percent);
  EXPECT_NEAR(*d.change_percent, 100.0 * 10100 / 30500, 1e-9);
  expect_adds_up(d);
}

TEST(ScorecardDecomposition, CleanerGridWithMoreEnergyStillAddsUp) {
  Decomposition d = decompose(figures(1000, 400000, 0), figures(1500, 300000, 0));
  EXPECT_NEAR(d.energy_term, 500 * 400, 1e-6);
  EXPECT_NEAR(d.intensity_term, 1500 * (200 - 400), 1e-6);
  expect_adds_up(d);
}

TEST(ScorecardDecomposition, NewGroupHasItsGramsInIntensityAndEmbodied) {
  Decomposition d = decompose(PeriodFigures{}, figures(10, 3000, 50));
  EXPECT_DOUBLE_EQ(d.energy_term, 0);
  EXPECT_DOUBLE_EQ(d.intensity_term, 3000);
  EXPECT_DOUBLE_EQ(d.embodied_term, 50);
  EXPECT_FALSE(d.change_percent);
  expect_adds_up(d);
}

TEST(ScorecardDecomposition, GoneGroupLosesItsGramsThroughEnergy) {
  Decomposition d = decompose(figures(10, 3000, 50), PeriodFigures{});
  EXPECT_DOUBLE_EQ(d.energy_term, -3000);
  EXPECT_NEAR(d.intensity_term, 0, 1e-9);
  EXPECT_DOUBLE_EQ(d.embodied_term, -50);
  ASSERT_TRUE(d.change_percent);
  EXPECT_DOUBLE_EQ(*d.change_percent, -100);
  expect_adds_up(d);
}

TEST(ScorecardDecomposition, AddsUpToTheGramOverManyGroups) {
  Scorecard card;
  for (int i = 0; i < 200; ++i) {
    GroupFigures g;
    g.group = "g" + std::to_string(i);
    g.previous = figures(1 + i * 0.37, 250.0 * (1 + i * 0.37) * (1 + (i % 7) * 0.01), i * 0.5);
    g.current = figures(1 + i * 0.41, 310.0 * (1 + i * 0.41) * (1 - (i % 5) * 0.02), i * 0.6);
    card.groups.push_back(g);
  }
  finish_scorecard(card);
  double sum = 0;
  for (const auto& g : card.groups) {
    expect_adds_up(g.change);
    sum += g.change.change_grams;
  }
  expect_adds_up(card.total.change);
  EXPECT_NEAR(sum, card.total.change.change_grams, 1e-6);
}

TEST(ScorecardFigures, TotalSumsGroupsAndOrdersByGrams) {
  Scorecard card;
  card.groups = {{"small", figures(1, 10, 1), figures(1, 10, 1), {}, {}},
                 {"big", figures(5, 500, 5), figures(4, 400, 4), {}, {"host h5 stopped"}}};
  finish_scorecard(card);
  ASSERT_EQ(card.groups.size(), 2u);
  EXPECT_EQ(card.groups[0].group, "big");
  EXPECT_DOUBLE_EQ(card.total.current.grams(), 516);
  EXPECT_DOUBLE_EQ(card.total.previous.grams(), 415);
  EXPECT_EQ(card.total.lower_bound, std::vector<std::string>{"host h5 stopped"});
}

TEST(ScorecardFigures, IntensityPerUnitOfWorkPrefersFunctionalUnits) {
  PeriodFigures f = figures(2, 600, 40, 4);
  EXPECT_DOUBLE_EQ(f.intensity_g_per_kwh(), 300);
  EXPECT_EQ(f.grams_per_unit(), (std::map<std::string, double>{{"cpu_hour", 160}}));
  f.units["requests"] = 3200;
  EXPECT_EQ(f.grams_per_unit(), (std::map<std::string, double>{{"requests", 0.2}}));
  EXPECT_FALSE(f.measured_share());
  f.component_joules = 4;
  f.measured_joules = 3;
  EXPECT_DOUBLE_EQ(*f.measured_share(), 0.75);
}

TEST(ScorecardFigures, TotalIsPerCpuHourWhenOnlySomeGroupsCountUnits) {
  Scorecard card;
  GroupFigures api{"api", figures(1, 100, 0, 1), figures(1, 100, 0, 1), {}, {}};
  api.current.units["requests"] = 1000;
  card.groups = {api, {"batch", figures(1, 100, 0, 1), figures(1, 100, 0, 1), {}, {}}};
  finish_scorecard(card);
  EXPECT_EQ(card.total.current.units.at("requests"), 1000);
  EXPECT_EQ(card.total.current.grams_per_unit(),
            (std::map<std::string, double>{{"cpu_hour", 100}}));
}

TEST(ScorecardFigures, DriversByGramsAndByPercent) {
  std::vector<GroupFigures> groups(3);
  groups[0].group = "a";
  groups[0].change.change_grams = -500;
  groups[0].change.change_percent = -10;
  groups[1].group = "b";
  groups[1].change.change_grams = 100;
  groups[1].change.change_percent = 50;
  groups[2].group = "new";
  groups[2].change.change_grams = 300;
  EXPECT_EQ(drivers_by_grams(groups, 5), (std::vector<std::string>{"a", "new", "b"}));
  EXPECT_EQ(drivers_by_grams(groups, 1), (std::vector<std::string>{"a"}));
  EXPECT_EQ(drivers_by_percent(groups, 5), (std::vector<std::string>{"b", "a"}));
}

}  // namespace
}  // namespace wattprobe
