#include "agent/carbon/best_window.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

constexpr int64_t kMin = 60000;

Forecast hourly(std::vector<double> values) {
  std::vector<ForecastPoint> points;
  for (std::size_t i = 0; i < values.size(); ++i) {
    points.push_back({static_cast<int64_t>(i) * 60 * kMin, values[i]});
  }
  return *forecast_from_points(points);
}

TEST(BestWindow, LastPointHoldsForTheSpacingBeforeIt) {
  Forecast f = hourly({300, 200, 100});
  EXPECT_EQ(f.end_ms, 180 * kMin);
  EXPECT_FALSE(forecast_from_points({{0, 100}}));
}

TEST(BestWindow, MeanIsTimeWeightedOverUnevenPoints) {
  // 100 for 10 min, 400 for 50 min, then 0 for 60 (its spacing to the point before).
  Forecast f = *forecast_from_points({{0, 100}, {10 * kMin, 400}, {60 * kMin, 0}});
  auto w = forecast_windows(f, 30 * kMin);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_DOUBLE_EQ(w[0].grams_per_kwh, (100.0 * 10 + 400.0 * 20) / 30);
  EXPECT_DOUBLE_EQ(w[1].grams_per_kwh, 400);
  EXPECT_DOUBLE_EQ(w[2].grams_per_kwh, 0);
  EXPECT_EQ(best_window(w)->start_ms, 60 * kMin);
}

TEST(BestWindow, EarliestWinsATie) {
  auto w = forecast_windows(hourly({300, 100, 500, 100, 300}), 60 * kMin);
  auto best = best_window(w);
  ASSERT_TRUE(best);
  EXPECT_EQ(best->start_ms, 60 * kMin);
  EXPECT_EQ(best->grams_per_kwh, 100);
}

TEST(BestWindow, WholeHorizonFitsOnceAndLongerNever) {
  Forecast f = hourly({300, 100, 200});
  auto whole = forecast_windows(f, 180 * kMin);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_DOUBLE_EQ(whole[0].grams_per_kwh, 200);
  EXPECT_TRUE(forecast_windows(f, 181 * kMin).empty());
  EXPECT_FALSE(best_window(forecast_windows(f, 181 * kMin)));
}

TEST(BestWindow, ClipStartsThePointInForceAtFromAndCutsTheEnd) {
  Forecast f = hourly({300, 100, 200});
  Forecast c = clip_forecast(f, 30 * kMin, 150 * kMin);
  ASSERT_EQ(c.points.size(), 3u);
  EXPECT_EQ(c.points[0].time_ms, 30 * kMin);
  EXPECT_EQ(c.points[0].grams_per_kwh, 300);
  EXPECT_EQ(c.end_ms, 150 * kMin);
  EXPECT_TRUE(clip_forecast(f, 200 * kMin, 300 * kMin).points.empty());
}

TEST(BestWindow, Rfc3339) {
  EXPECT_EQ(format_rfc3339(1796635440000), "2026-12-07T09:24:00Z");
  EXPECT_EQ(format_rfc3339(1796635440123), "2026-12-07T09:24:00.123Z");
}

}  // namespace
}  // namespace wattprobe
