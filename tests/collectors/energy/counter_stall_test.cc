#include "collectors/energy/counter_stall.h"

#include <gtest/gtest.h>

#include "collectors/cpu/proc_stat.h"

namespace wattprobe {
namespace {

using Change = StallDetector::Change;

TEST(StallDetector, StallsAfterEnoughBusyTicksAndSecondsWithoutAChange) {
  StallDetector d;  // 3 ticks and 5 s with at least 0.5 CPU busy
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::none);  // 3 ticks, but only 3 s
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_FALSE(d.stalled());
  EXPECT_EQ(d.observe(false, 1.0, 2.0), Change::stalled);
  EXPECT_TRUE(d.stalled());
  EXPECT_EQ(d.busy_ticks(), 5);
  EXPECT_DOUBLE_EQ(d.busy_seconds(), 5.0);
  // Said once: further still ticks are no new transition.
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_TRUE(d.stalled());
}

TEST(StallDetector, LongTicksStillNeedTheMinimumNumberOfTicks) {
  StallDetector d;
  EXPECT_EQ(d.observe(false, 10.0, 1.0), Change::none);
  EXPECT_EQ(d.observe(false, 10.0, 1.0), Change::none);
  EXPECT_EQ(d.observe(false, 10.0, 1.0), Change::stalled);
}

TEST(StallDetector, IdleOrUnknownTicksAreNoEvidenceEitherWay) {
  StallDetector d;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(d.observe(false, 1.0, 0.2), Change::none);  // below half a CPU: idle
    ASSERT_EQ(d.observe(false, 1.0, std::nullopt), Change::none);
  }
  EXPECT_FALSE(d.stalled());
  EXPECT_EQ(d.busy_ticks(), 0);
  // Idle ticks between busy ones do not reset the count either: the counter never moved.
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(d.observe(false, 1.0, 1.0), Change::none);
    ASSERT_EQ(d.observe(false, 1.0, 0.0), Change::none);
  }
  EXPECT_EQ(d.observe(false, 1.0, 1.0), Change::stalled);
}

TEST(StallDetector, AnyMovementResetsTheEvidence) {
  StallDetector d;
  for (int i = 0; i < 4; ++i) ASSERT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_EQ(d.observe(true, 1.0, 1.0), Change::none);
  EXPECT_EQ(d.busy_ticks(), 0);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(d.observe(false, 1.0, 1.0), Change::none);
  EXPECT_FALSE(d.stalled());
}

TEST(StallDetector, RecoversOnceWhenTheCounterMovesAgain) {
  StallDetector d({1, 0.0, 0.5});
  EXPECT_EQ(d.observe(false, 0.2, 1.0), Change::stalled);
  EXPECT_EQ(d.observe(true, 0.2, 0.0), Change::recovered);  // movement needs no busy CPUs
  EXPECT_FALSE(d.stalled());
  EXPECT_EQ(d.observe(true, 0.2, 1.0), Change::none);
  // And it can stall again, counted as a new transition.
  EXPECT_EQ(d.observe(false, 0.2, 1.0), Change::stalled);
}

TEST(StallDetector, MarkedStalledFromTheStartUpCheck) {
  StallDetector d;
  EXPECT_EQ(d.mark_stalled(), Change::stalled);
  EXPECT_EQ(d.mark_stalled(), Change::none);
  EXPECT_TRUE(d.stalled());
  EXPECT_EQ(d.observe(true, 1.0, std::nullopt), Change::recovered);
}

TEST(CounterStall, WatchesOnlyDomainsThatMustMove) {
  for (std::string_view d : {"package", "core", "dram", "psys"})
    EXPECT_TRUE(counter_must_advance(d));
  for (std::string_view d : {"uncore", "gpu", "platform"}) EXPECT_FALSE(counter_must_advance(d));
}

/// A source whose readings come from a script: each sample() takes the next entry.
class ScriptedSource : public EnergySource {
 public:
  explicit ScriptedSource(std::vector<Sample> samples) : samples_(std::move(samples)) {}
  std::string_view name() const override { return "scripted"; }
  Availability probe() override { return {true, "scripted", ""}; }
  Sample sample() override { return samples_.at(next_++); }

 private:
  std::vector<Sample> samples_;
  std::size_t next_ = 0;
};

Reading counter(std::string domain, int socket, std::string key, uint64_t raw) {
  Reading r;
  r.domain = std::move(domain);
  r.socket = socket;
  r.key = std::move(key);
  r.raw = raw;
  return r;
}

TEST(CounterStall, StartUpCheckNamesTheCountersThatStoodStill) {
  // package-0 moves; package-1 and its dram stand still; uncore never counts; a die row moves if
  // either die does.
  Sample first, second;
  first.readings = {counter("package", 0, "intel-rapl:0", 1000),
                    counter("package", 1, "intel-rapl:1", 5000),
                    counter("dram", 1, "intel-rapl:1:0", 7),
                    counter("uncore", 0, "intel-rapl:0:1", 3),
                    counter("core", 0, "die0", 10),
                    counter("core", 0, "die1", 20)};
  second.readings = first.readings;
  second.readings[0].raw = 2000;
  second.readings[5].raw = 21;
  ScriptedSource source({first, second});
  int burst = 0;
  auto checks = check_counters_advance({&source}, [&] {
    ++burst;
    return StallEvidence{0.2, 1.0};
  });
  EXPECT_EQ(burst, 1);
  ASSERT_EQ(checks.size(), 1u);
  ASSERT_EQ(checks[0].counters.size(), 4u);  // package 0, package 1, dram 1, core 0
  EXPECT_FALSE(checks[0].all_stalled());
  EXPECT_EQ(checks[0].stalled_descriptions(),
            (std::vector<std::string>{"package socket 1 (intel-rapl:1) stayed at 5000",
                                      "dram socket 1 (intel-rapl:1:0) stayed at 7"}));
  EXPECT_FALSE(checks[0].counters[3].stalled);
  EXPECT_EQ(checks[0].counters[3].keys, "die0,die1");
}

TEST(CounterStall, StartUpCheckWithoutBusyCpusCallsNothingStalled) {
  Sample s;
  s.readings = {counter("package", 0, "intel-rapl:0", 1000)};
  ScriptedSource source({s, s});
  auto checks = check_counters_advance({&source}, [] { return StallEvidence{0.2, 0.1}; });
  ASSERT_EQ(checks[0].counters.size(), 1u);
  EXPECT_FALSE(checks[0].counters[0].stalled);
}

TEST(CounterStall, StartUpCheckLeavesOutFailedReadsAndSkipsTheBurstWithNothingToWatch) {
  Sample first, second;
  first.readings = {counter("package", 0, "intel-rapl:0", 1000)};
  second.errors = {Error{ErrorKind::transient, "/x", "read"}};
  ScriptedSource failing({first, second});
  auto checks = check_counters_advance({&failing}, [] { return StallEvidence{0.2, 1.0}; });
  EXPECT_TRUE(checks[0].counters.empty());
  EXPECT_FALSE(checks[0].all_stalled());

  Reading gauge = counter("package", -1, "cpu", 0);
  gauge.kind = ReadingKind::power_gauge;
  Sample only_gauge;
  only_gauge.readings = {gauge, counter("uncore", 0, "intel-rapl:0:1", 1)};
  ScriptedSource estimate({only_gauge, only_gauge});
  bool burned = false;
  checks = check_counters_advance({&estimate}, [&] {
    burned = true;
    return StallEvidence{};
  });
  EXPECT_FALSE(burned);
  EXPECT_TRUE(checks[0].counters.empty());
}

TEST(CounterStall, CpuBurstKeepsACpuBusy) {
  auto stat = read_proc_stat(HostPaths{});
  if (!stat) GTEST_SKIP() << stat.error().message();
  StallEvidence e =
      cpu_burst(HostPaths{}, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
  EXPECT_GE(e.seconds, 0.1);
  // The burst itself keeps about one CPU busy; on a loaded host others add to it.
  EXPECT_GE(e.busy_cpus, 0.5);
  EXPECT_LE(e.busy_cpus, stat->online_cpus() * 1.1);
}

}  // namespace
}  // namespace wattprobe
