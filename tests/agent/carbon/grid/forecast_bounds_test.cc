// A huge or odd grid answer stays a bounded set of well-formed series (issue 16): at most
// kMaxForecastPoints forecast series from a 4 MiB answer of any provider, one series per
// horizon minute, and a zone outside [A-Za-z0-9_.-]{1,64} refused before it becomes a label.
#include <gtest/gtest.h>

#include <set>

#include "agent/carbon/grid/carbonintensity_uk.h"
#include "agent/carbon/grid/electricitymaps.h"
#include "agent/carbon/grid/intensity.h"
#include "agent/carbon/grid/watttime.h"

namespace wattprobe {
namespace {

constexpr int64_t kT0 = 1893456000000;  // 2030-01-01T00:00:00Z
constexpr std::size_t kFourMiB = 4u << 20;

class OneAnswer : public GridProvider {
 public:
  explicit OneAnswer(GridFetch f) : f_(std::move(f)) {}
  std::string_view name() const override { return "one"; }
  GridFetch fetch(int64_t) override { return f_; }

 private:
  GridFetch f_;
};

std::string utc(int64_t ms) {
  time_t t = ms / 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return buf;
}

/// Points every 30 s from kT0 (two per minute) until the body reaches 4 MiB.
std::string four_mib(const std::string& head, const std::string& tail,
                     const std::function<std::string(int64_t, int)>& point) {
  std::string body = head;
  for (int i = 0; body.size() < kFourMiB - tail.size() - 200; ++i) {
    if (i) body += ",";
    body += point(kT0 + i * 30000LL, i);
  }
  return body + tail;
}

/// The forecast family GridIntensity exports after taking `f`, and its error counts.
std::pair<std::vector<Series>, std::map<std::string, uint64_t>> exported(GridFetch f) {
  GridIntensity grid(std::make_unique<OneAnswer>(std::move(f)), GridIntensityOptions{});
  grid.refresh_now(kT0);
  std::vector<Family> out;
  grid.append_families(out, kT0);
  for (auto& fam : out) {
    if (fam.name == "wattprobe_grid_carbon_intensity_forecast_grams_per_kwh") {
      return {fam.series, grid.status().errors_by_reason};
    }
  }
  return {};
}

void expect_bounded(const std::vector<Series>& series) {
  EXPECT_EQ(series.size(), kMaxForecastPoints);
  std::set<std::string> horizons;
  for (const auto& s : series) {
    for (const auto& [k, v] : s.labels)
      if (k == "horizon_minutes") {
        EXPECT_TRUE(horizons.insert(v).second) << "twice: " << v;
      }
  }
  EXPECT_EQ(horizons.size(), series.size());
  EXPECT_TRUE(horizons.contains("0"));
  EXPECT_TRUE(horizons.contains(std::to_string(kMaxForecastPoints - 1)));
}

TEST(ForecastBounds, ElectricityMapsFourMiBAnswer) {
  std::string body = four_mib(R"({"zone":"DE","forecast":[)", "]}", [](int64_t t, int i) {
    return R"({"carbonIntensity":)" + std::to_string(200 + i % 100) + R"(,"datetime":")" + utc(t) +
           R"(.000Z"})";
  });
  ASSERT_GE(body.size(), kFourMiB - 300);
  auto points = parse_electricitymaps_forecast(body, "http://127.0.0.1/forecast");
  ASSERT_TRUE(points.ok()) << points.error().message();
  EXPECT_GT(points->size(), 50000u);
  GridFetch f;
  f.reading = IntensityReading{300, "DE", "average", kT0, *points, {}};
  auto [series, errors] = exported(std::move(f));
  expect_bounded(series);
  EXPECT_EQ(errors["too_large"], 1u);
  EXPECT_EQ(errors["malformed"], 1u);  // the points sharing a minute
}

TEST(ForecastBounds, WattTimeFourMiBAnswer) {
  std::string body = four_mib(
      R"({"data":[)", R"(],"meta":{"units":"lbs_co2_per_mwh"}})",
      [](int64_t t, int) { return R"({"point_time":")" + utc(t) + R"(+00:00","value":900})"; });
  GridFetch f = parse_watttime_forecast(body, "http://127.0.0.1/v3/forecast");
  ASSERT_TRUE(f.reading) << f.error.message();
  f.reading->zone = "CAISO_NORTH";
  auto [series, errors] = exported(std::move(f));
  expect_bounded(series);
}

TEST(ForecastBounds, CarbonIntensityUkFourMiBAnswer) {
  std::string body = four_mib(R"({"data":[)", "]}", [](int64_t t, int) {
    return R"({"from":")" + utc(t).substr(0, 16) + R"(Z","to":")" + utc(t + 1800000).substr(0, 16) +
           R"(Z","intensity":{"forecast":266,"actual":null,"index":"moderate"}})";
  });
  GridFetch f = parse_carbonintensity_uk(body, "http://127.0.0.1/intensity");
  ASSERT_TRUE(f.reading) << f.error.message();
  auto [series, errors] = exported(std::move(f));
  expect_bounded(series);
}

TEST(ForecastBounds, AZoneIsALabelOnlyWhenItIsAZoneName) {
  for (std::string zone : {"DE", "US-CAL-CISO", "CAISO_NORTH", "GB", "", "a.b"}) {
    EXPECT_FALSE(check_zone(zone)) << zone;
  }
  for (std::string zone :
       {std::string("DE\"} evil{x=\""), std::string("DE\nX"), std::string(65, 'A'),
        std::string("zone with space"), std::string("Z\0Z", 3)}) {
    EXPECT_TRUE(check_zone(zone)) << zone;
  }
  // The API's zone is refused as a malformed answer; the last good value stays in force.
  GridFetch evil;
  evil.reading = IntensityReading{300, "DE\"} x{y=\"", "average", kT0, {}, {}};
  GridFetch checked = bound_fetch(evil);
  EXPECT_FALSE(checked.reading);
  EXPECT_EQ(checked.reason, "malformed");
  EXPECT_EQ(checked.error.path, "zone");
  auto parsed = parse_electricitymaps_latest(
      R"({"zone":"DE\nInjected: 1","carbonIntensity":300,"datetime":"2030-01-01T00:00:00.000Z"})",
      "http://127.0.0.1/latest");
  ASSERT_TRUE(parsed.reading);
  EXPECT_FALSE(bound_fetch(parsed).reading);
}

}  // namespace
}  // namespace wattprobe
