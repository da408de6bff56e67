#include "agent/liveness.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

using std::chrono::milliseconds;

TEST(Liveness, UnhealthyBeforeTheFirstTickSayingSo) {
  HealthAnswer a = Liveness::judge(std::nullopt, milliseconds(1000));
  EXPECT_EQ(a.status, 503);
  EXPECT_EQ(a.text, "no tick yet (interval 1 s)\n");
}

TEST(Liveness, HealthyUpToThreeIntervalsThenSaysHowLong) {
  EXPECT_EQ(Liveness::judge(milliseconds(0), milliseconds(1000)).status, 200);
  EXPECT_EQ(Liveness::judge(milliseconds(3000), milliseconds(1000)).text, "ok\n");
  HealthAnswer late = Liveness::judge(milliseconds(12345), milliseconds(1000));
  EXPECT_EQ(late.status, 503);
  EXPECT_EQ(late.text, "no tick for 12.3 s (interval 1 s)\n");
  HealthAnswer sub = Liveness::judge(milliseconds(301), milliseconds(100));
  EXPECT_EQ(sub.status, 503);
  EXPECT_EQ(sub.text, "no tick for 0.3 s (interval 0.1 s)\n");
}

TEST(Liveness, AnswersFromTheLastPublishedTick) {
  Liveness live(milliseconds(60000));
  EXPECT_EQ(live.answer().status, 503);
  live.on_snapshot(nullptr);
  EXPECT_EQ(live.answer().status, 200);
}

}  // namespace
}  // namespace wattprobe
