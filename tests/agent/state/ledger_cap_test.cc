// The ledger's byte cap (--ledger-max-bytes, issue 16): past it the oldest closed day files go
// first, today's file never, and `wattprobe report` still sums what is left.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "agent/base/utc_time.h"
#include "agent/cli/report.h"
#include "agent/state/ledger.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

/// A day file of `bytes` bytes of idle lines of 1 J each, one per minute from its midnight.
void write_day(const TempTree& t, const std::string& date, std::size_t bytes) {
  std::string text;
  int64_t start = *parse_utc_date(date);
  for (int i = 0; text.size() < bytes; ++i) {
    text += R"({"v":1,"start":")" + format_utc_instant(start + i * 60000LL % 86400000) +
            R"(","period_seconds":60,"covered_seconds":60,"measured":true,"type":"idle",)"
            R"("joules":1,"gpu_joules":0,"cpu_seconds":0,"operational_co2e_grams":0,)"
            R"("embodied_co2e_grams":0})"
            "\n";
  }
  t.write("state/ledger/" + date + ".jsonl", text);
}

bool exists(const TempTree& t, const std::string& date) {
  return std::filesystem::exists(t.path("state/ledger/" + date + ".jsonl"));
}

TEST(LedgerCap, OldestClosedDayFilesGoFirstAndTodayStays) {
  TempTree t;
  for (std::string d : {"2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"}) {
    write_day(t, d, 400 << 10);
  }
  write_day(t, "2026-11-24", 1200 << 10);  // today: over the cap alone, still kept
  LedgerOptions o;
  o.state_dir = t.path("state");
  o.retention_days = 0;
  o.max_bytes = 2 << 20;
  Ledger ledger(o);
  ASSERT_TRUE(ledger.open(*parse_utc_instant("2026-11-24T12:00:00Z")).ok());
  // 2.8 MiB in all: 11-20 and 11-21 go (2.0 MiB left), the newer days stay.
  EXPECT_FALSE(exists(t, "2026-11-20"));
  EXPECT_FALSE(exists(t, "2026-11-21"));
  EXPECT_TRUE(exists(t, "2026-11-22"));
  EXPECT_TRUE(exists(t, "2026-11-23"));
  EXPECT_TRUE(exists(t, "2026-11-24"));
  EXPECT_EQ(ledger.files_removed_for_size(), 2u);
  std::vector<Family> fams;
  ledger.append_families(fams);
  bool counted = false;
  for (const auto& f : fams) {
    if (f.name == "wattprobe_agent_ledger_files_removed_for_size_total") {
      counted = f.series.at(0).value == 2;
    }
  }
  EXPECT_TRUE(counted);

  // The report reads the days that are left, and no line is malformed.
  ReportOptions r;
  r.state_dir = t.path("state");
  r.since_ms = *parse_utc_instant("2026-11-20T00:00:00Z");
  r.until_ms = *parse_utc_instant("2026-11-25T00:00:00Z");
  std::ostringstream warnings;
  LedgerSums sums = sum_ledger(r, warnings);
  EXPECT_EQ(sums.files.size(), 3u);
  EXPECT_EQ(sums.skipped, 0u) << warnings.str();
  EXPECT_GT(sums.idle.joules, 0);
}

std::uintmax_t size_of(const TempTree& t, const std::string& date) {
  return std::filesystem::file_size(t.path("state/ledger/" + date + ".jsonl"));
}

// Issue 25: the cap bounded only the closed days; today's file grew past it. Now a write that
// would pass the cap first deletes closed days, and when only today's file is left its periods
// are dropped, counted and logged, so the day files never pass the cap.
TEST(LedgerCap, TodaysFileIsBoundedToo) {
  TempTree t;
  write_day(t, "2026-11-23", 8 << 10);
  LedgerOptions o;
  o.state_dir = t.path("state");
  o.retention_days = 0;
  o.period = std::chrono::seconds(1);
  o.max_bytes = 24 << 10;
  Ledger ledger(o);
  int64_t now = *parse_utc_instant("2026-11-24T12:00:00Z");
  ASSERT_TRUE(ledger.open(now).ok());
  EXPECT_TRUE(exists(t, "2026-11-23")) << "under the cap at start";
  // 50 workloads a second: about 15 KiB of lines a period, so a few periods pass the cap.
  for (int second = 0; second < 20; ++second) {
    EnergyTick tick;
    tick.end_ms = now += 1000;
    tick.seconds = 1;
    tick.idle_joules = 1;
    CarbonTickGrams grams;
    grams.end_ms = tick.end_ms;
    for (int w = 0; w < 50; ++w) {
      tick.workloads.push_back(
          {WorkloadId{"service-" + std::to_string(w) + ".service", "service", "", "", ""}, 1.0,
           0.01, 10'000'000, 0});
      grams.workloads.push_back({});
    }
    ledger.on_tick(tick, grams);
  }
  ledger.flush_all();
  EXPECT_FALSE(exists(t, "2026-11-23")) << "the closed day goes before today's lines do";
  ASSERT_TRUE(exists(t, "2026-11-24"));
  EXPECT_LE(size_of(t, "2026-11-24"), o.max_bytes);
  EXPECT_GT(size_of(t, "2026-11-24"), 0u);
  EXPECT_GT(ledger.lines_dropped_for_size(), 0u);
  EXPECT_GT(ledger.lines_written(), 0u);
}

TEST(LedgerCap, ZeroKeepsEverything) {
  TempTree t;
  for (std::string d : {"2026-11-20", "2026-11-21"}) write_day(t, d, 2 << 20);
  LedgerOptions o;
  o.state_dir = t.path("state");
  o.retention_days = 0;
  o.max_bytes = 0;
  Ledger ledger(o);
  ASSERT_TRUE(ledger.open(*parse_utc_instant("2026-11-24T12:00:00Z")).ok());
  EXPECT_TRUE(exists(t, "2026-11-20"));
  EXPECT_TRUE(exists(t, "2026-11-21"));
}

}  // namespace
}  // namespace wattprobe
