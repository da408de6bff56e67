#include "agent/carbon/grid/file_provider.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

constexpr int64_t kHour = 3600000;

std::string iso(int64_t ms) {
  time_t s = static_cast<time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A whole hour, so rows and ticks line up on exact boundaries.
int64_t this_hour() { return wall_ms() / kHour * kHour; }

TEST(FileGrid, CsvScheduleGivesValueInForceAndForecast) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.csv", "time,grams_per_kwh\n" + iso(h - 2 * kHour) + ",200\n" + iso(h - kHour) +
                             ",300\n" + std::to_string((h + kHour) / 1000) + ",400\n" +
                             iso(h + 2 * kHour) + ",500\n");
  FileGridProvider provider(tree.path("grid.csv"), "DE");
  GridFetch f = provider.fetch(h + 1000);
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_TRUE(f.warnings.empty());
  EXPECT_DOUBLE_EQ(f.reading->grams_per_kwh, 300);
  EXPECT_EQ(f.reading->zone, "DE");
  ASSERT_EQ(f.reading->forecast.size(), 2u);
  EXPECT_DOUBLE_EQ(f.reading->forecast[0].grams_per_kwh, 400);

  // The schedule moves on without a refresh: a tick inside the next hour uses that hour's row.
  GridIntensityOptions o;
  o.static_grams_per_kwh = 475;
  GridIntensity grid(std::make_unique<FileGridProvider>(tree.path("grid.csv"), "DE"), o);
  grid.refresh_now(h + 1000);
  EXPECT_DOUBLE_EQ(grid.at(h + 1000).grams_per_kwh, 300);
  EXPECT_DOUBLE_EQ(grid.at(h + kHour).grams_per_kwh, 400);
  EXPECT_DOUBLE_EQ(grid.at(h + 2 * kHour + 5).grams_per_kwh, 500);
  // Before the first row nothing is in force: the static default.
  EXPECT_DOUBLE_EQ(grid.at(h - 3 * kHour).grams_per_kwh, 475);

  std::vector<Family> fams;
  grid.append_families(fams, h);
  const Family* fc = nullptr;
  for (const auto& fam : fams)
    if (fam.name == "wattprobe_grid_carbon_intensity_forecast_grams_per_kwh") fc = &fam;
  ASSERT_NE(fc, nullptr);
  ASSERT_EQ(fc->series.size(), 2u);
  EXPECT_EQ(fc->series[0].labels[1].second, "60");
  EXPECT_EQ(fc->series[1].labels[1].second, "120");
  EXPECT_DOUBLE_EQ(fc->series[1].value, 500);
}

TEST(FileGrid, MalformedRowIsNamedAndTheRestKept) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.csv", "# hourly schedule\n" + iso(h - kHour) + ",250\n" + "yesterday,oops\n" +
                             iso(h) + ",-3\n" + iso(h + kHour) + ",260\n");
  GridIntensity grid(std::make_unique<FileGridProvider>(tree.path("grid.csv"), ""), {});
  grid.refresh_now(h + 10);
  auto st = grid.status();
  ASSERT_TRUE(st.last_good);
  EXPECT_EQ(st.last_good->schedule.size(), 2u);
  EXPECT_EQ(st.errors_by_reason["malformed"], 2u);
  EXPECT_NE(st.last_error.find(tree.path("grid.csv").string()), std::string::npos);
  EXPECT_NE(st.last_error.find("line 3"), std::string::npos) << st.last_error;
  std::cout << "[file] " << st.last_error << "\n";
  EXPECT_DOUBLE_EQ(grid.at(h + 10).grams_per_kwh, 250);
  EXPECT_DOUBLE_EQ(grid.at(h + kHour).grams_per_kwh, 260);
  // Unchanged file: not re-read, the same rows are not counted again.
  grid.refresh_now(h + 20);
  EXPECT_EQ(grid.status().errors_by_reason["malformed"], 2u);
}

// Found by tests/fuzz/schedule_file: Unix seconds past the year 9999 overflowed when made
// milliseconds (undefined behaviour); such a row is now malformed like any other.
TEST(FileGrid, UnixSecondsPastYear9999AreAMalformedRow) {
  std::vector<Error> errors;
  auto points = parse_intensity_schedule(
      "time,grams_per_kwh\n210700100000100000,300\n253402300799,200\n", "grid.csv", errors);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].time_ms, 253402300799000);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].message().find("line 2"), std::string::npos) << errors[0].message();
}

TEST(FileGrid, EditedFileIsPickedUpByTheRefreshThread) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.csv", iso(h - kHour) + ",100\n");
  GridIntensityOptions o;
  o.refresh = std::chrono::milliseconds(20);
  GridIntensity grid(std::make_unique<FileGridProvider>(tree.path("grid.csv"), ""), o);
  grid.start();
  for (int i = 0; i < 250 && grid.at(wall_ms()).grams_per_kwh != 100; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_DOUBLE_EQ(grid.at(wall_ms()).grams_per_kwh, 100);
  tree.write("grid.csv", iso(h - kHour) + ",100\n" + iso(h) + ",180\n");
  double seen = 0;
  for (int i = 0; i < 250 && seen != 180; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen = grid.at(wall_ms()).grams_per_kwh;
  }
  grid.stop();
  EXPECT_DOUBLE_EQ(seen, 180);
}

TEST(FileGrid, JsonInTheElectricityMapsForecastShape) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.json", R"({"zone":"FR","forecast":[{"carbonIntensity":52,"datetime":")" +
                              iso(h) + R"("},{"carbonIntensity":"x","datetime":")" +
                              iso(h + kHour) + R"("}]})");
  FileGridProvider provider(tree.path("grid.json"), "FR");
  GridFetch f = provider.fetch(h + 1);
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_DOUBLE_EQ(f.reading->grams_per_kwh, 52);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_NE(f.warnings[0].second.detail.find("entry 1"), std::string::npos);
}

TEST(FileGrid, MissingFileFallsBackToStatic) {
  TempTree tree;
  GridIntensityOptions o;
  o.static_grams_per_kwh = 420;
  GridIntensity grid(std::make_unique<FileGridProvider>(tree.path("nope.csv"), ""), o);
  grid.refresh_now(wall_ms());
  EXPECT_EQ(grid.status().errors_by_reason["absent"], 1u);
  auto in = grid.at(wall_ms());
  EXPECT_DOUBLE_EQ(in.grams_per_kwh, 420);
  EXPECT_EQ(in.signal, "fallback");
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

TEST(FileGrid, CsvThirdColumnIsTheCarbonFreeShare) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.csv", "time,grams_per_kwh,cfe_percent\n" + iso(h - kHour) + ",300,40\n" +
                             iso(h) + ",200,\n" + iso(h + kHour) + ",100,85.5\n" +
                             iso(h + 2 * kHour) + ",100,101\n");
  FileGridProvider provider(tree.path("grid.csv"), "DE");
  GridFetch f = provider.fetch(h + 1000);
  ASSERT_TRUE(f.reading) << f.error.message();
  const auto& s = f.reading->schedule;
  ASSERT_EQ(s.size(), 3u);  // the 101 % row is refused
  EXPECT_EQ(*s[0].cfe_percent, 40);
  EXPECT_FALSE(s[1].cfe_percent);
  EXPECT_EQ(*s[2].cfe_percent, 85.5);
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_NE(f.warnings[0].second.detail.find("cfe_percent"), std::string::npos);
}

TEST(FileGrid, JsonFossilFreePercentageIsTheCarbonFreeShare) {
  TempTree tree;
  int64_t h = this_hour();
  tree.write("grid.json", R"([{"carbonIntensity":52,"fossilFreePercentage":91,"datetime":")" +
                              iso(h) + R"("},{"carbonIntensity":60,"datetime":")" + iso(h + kHour) +
                              R"("}])");
  FileGridProvider provider(tree.path("grid.json"), "FR");
  GridFetch f = provider.fetch(h + 1);
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_EQ(*f.reading->schedule[0].cfe_percent, 91);
  EXPECT_FALSE(f.reading->schedule[1].cfe_percent);
}

}  // namespace
}  // namespace wattprobe
