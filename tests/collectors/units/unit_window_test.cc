#include "collectors/units/unit_window.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

/// Feeds `seconds` of 1 s ticks at `watts` and `rate` units per second, from `at`.
void feed(UnitWindow& w, UnitPoint& p, double seconds, double watts, double rate) {
  for (int i = 0; i < seconds; ++i) {
    p.t_ms += 1000;
    p.joules += watts;
    p.grams += watts / 1000;
    p.units += rate;
    w.add(p, true, false);
  }
}

TEST(UnitWindow, NoUnitsGivesNoFigure) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 30, 50, 0);
  UnitFigures f = w.figures();
  EXPECT_FALSE(f.joules_per_unit.has_value());
  EXPECT_FALSE(f.grams_per_unit.has_value());
  EXPECT_FALSE(f.stable);
  EXPECT_EQ(f.reason, "no_units");
}

TEST(UnitWindow, DividesTheWindowsEnergyByItsUnits) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 5, 100, 10);  // before the window: 10 J per unit
  feed(w, p, 10, 60, 20);  // the window: 3 J per unit
  UnitFigures f = w.figures();
  ASSERT_TRUE(f.joules_per_unit.has_value());
  EXPECT_DOUBLE_EQ(*f.joules_per_unit, 3);
  EXPECT_NEAR(*f.grams_per_unit, 0.003, 1e-12);
}

TEST(UnitWindow, SteadyAfterTwentySecondsOfUnits) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 19, 60, 20);
  EXPECT_FALSE(w.figures().stable);
  EXPECT_EQ(w.figures().reason, "warming_up");
  feed(w, p, 1, 60, 20);
  EXPECT_TRUE(w.figures().stable) << w.figures().reason << ": " << w.figures().detail;
  EXPECT_EQ(w.figures().reason, "steady");
}

TEST(UnitWindow, FewerThanAHundredUnitsIsNotSteady) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 30, 60, 9);  // 90 units in the window
  EXPECT_EQ(w.figures().reason, "few_units");
  feed(w, p, 10, 60, 11);  // 110
  EXPECT_TRUE(w.figures().stable);
}

TEST(UnitWindow, AQuarterOffByMoreThanFivePercentIsUnsteady) {
  UnitWindow w(20000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 40, 60, 20);
  ASSERT_TRUE(w.figures().stable);
  // The last quarter (5 s) draws 10 % more per unit: the window's figure moves 2.5 %, the
  // quarter 7.3 % from it.
  feed(w, p, 5, 66, 20);
  UnitFigures f = w.figures();
  EXPECT_FALSE(f.stable);
  EXPECT_EQ(f.reason, "unsteady");
  EXPECT_NE(f.detail.find("quarter 4"), std::string::npos) << f.detail;
  // 4 % more in the last quarter stays within 5 % of the window.
  UnitWindow calm(20000);
  UnitPoint q;
  calm.add(q, true, false);
  feed(calm, q, 40, 60, 20);
  feed(calm, q, 5, 62.4, 20);
  EXPECT_TRUE(calm.figures().stable) << calm.figures().detail;
}

TEST(UnitWindow, ARateJumpIsUnsteady) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 30, 60, 20);
  ASSERT_TRUE(w.figures().stable);
  feed(w, p, 3, 60, 40);
  EXPECT_EQ(w.figures().reason, "unsteady");
}

TEST(UnitWindow, AFailedReadOrARestartStartsTheSteadyRunAgain) {
  UnitWindow w(10000);
  UnitPoint p;
  w.add(p, true, false);
  feed(w, p, 30, 60, 20);
  ASSERT_TRUE(w.figures().stable);
  p.t_ms += 1000;
  w.add(p, false, false);  // the read failed: the last total, no units
  EXPECT_EQ(w.figures().reason, "warming_up");
  feed(w, p, 25, 60, 20);
  ASSERT_TRUE(w.figures().stable);
  p.t_ms += 1000;
  p.units += 20;
  p.joules += 60;
  w.add(p, true, true);
  EXPECT_EQ(w.figures().reason, "warming_up");
}

}  // namespace
}  // namespace wattprobe
