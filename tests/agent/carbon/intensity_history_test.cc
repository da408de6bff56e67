#include "agent/carbon/intensity_history.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

TEST(IntensityHistory, BoundedByMinutesWhateverTheTickRate) {
  IntensityHistory h;
  const int64_t start = 1796635440000;
  // Eight days of 1 s ticks whose value changes every tick: kept one span per minute at most,
  // seven days of them.
  const int64_t ticks = 8 * 86400;
  for (int64_t i = 0; i < ticks; ++i) {
    h.record(start + i * 1000, start + (i + 1) * 1000, 100 + static_cast<double>(i % 7));
  }
  EXPECT_LE(h.size(), 7u * 1440 + 2);
  EXPECT_GE(h.size(), 7u * 1440 - 2);
  const int64_t end = start + ticks * 1000;
  // The first day is gone (but for its last minutes, within 7 days of the last closed one).
  EXPECT_TRUE(h.between(start, start + 86400000 - 180000).empty());
  EXPECT_FALSE(h.between(end - 60000, end).empty());
}

TEST(IntensityHistory, EqualMinutesJoinAndTheMeanIsTimeWeighted) {
  IntensityHistory h;
  const int64_t t0 = 1796635440000;  // a whole minute
  for (int i = 0; i < 300; ++i) h.record(t0 + i * 1000, t0 + (i + 1) * 1000, 200);
  for (int i = 300; i < 360; ++i) h.record(t0 + i * 1000, t0 + (i + 1) * 1000, 500);
  auto spans = h.between(t0, t0 + 360000);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].end_ms - spans[0].start_ms, 300000);
  EXPECT_EQ(spans[1].grams_per_kwh, 500);
  EXPECT_DOUBLE_EQ(*h.mean(t0, t0 + 360000), (200.0 * 300 + 500.0 * 60) / 360);
  EXPECT_DOUBLE_EQ(*h.mean(t0 + 240000, t0 + 360000), 350);
  EXPECT_FALSE(h.mean(t0 - 10000, t0));
}

}  // namespace
}  // namespace wattprobe
