#include "agent/carbon/grid/electricitymaps.h"

#include <gtest/gtest.h>

#include "tests/support/fake_grid_api.h"

namespace wattprobe {
namespace {

using testing::FakeGridApi;

GridApiOptions options_for(const FakeGridApi& api) {
  GridApiOptions o;
  o.base_url = api.base_url();
  o.zone = "DE";
  o.secret = FakeGridApi::kToken;
  o.http.connect_timeout_s = 1;
  o.http.total_timeout_s = 1;
  o.http.max_body_bytes = 1 << 20;
  return o;
}

TEST(ElectricityMaps, ReadsLatestAndForecast) {
  FakeGridApi api;
  ASSERT_TRUE(api.running());
  api.set_value(338);
  ElectricityMapsProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_DOUBLE_EQ(f.reading->grams_per_kwh, 338);
  EXPECT_EQ(f.reading->zone, "DE");
  EXPECT_EQ(f.reading->signal, "average");
  ASSERT_EQ(f.reading->forecast.size(), 3u);
  EXPECT_DOUBLE_EQ(f.reading->forecast[0].grams_per_kwh, 348);
  EXPECT_EQ(f.reading->forecast[1].time_ms - f.reading->forecast[0].time_ms, 3600000);
  EXPECT_TRUE(f.warnings.empty());
}

TEST(ElectricityMaps, WrongTokenIsUnauthorized) {
  FakeGridApi api;
  ASSERT_TRUE(api.running());
  auto o = options_for(api);
  o.secret = "wrong";
  ElectricityMapsProvider provider(o);
  GridFetch f = provider.fetch(wall_ms());
  EXPECT_FALSE(f.reading);
  EXPECT_EQ(f.reason, "unauthorized");
}

TEST(ElectricityMaps, SurvivesEveryBadAnswerAndRecovers) {
  FakeGridApi api;
  ASSERT_TRUE(api.running());
  GridIntensity grid(std::make_unique<ElectricityMapsProvider>(options_for(api)),
                     GridIntensityOptions{});
  std::string seen = testing::check_bad_answers(api, grid, 338, testing::standard_bad_answers());
  EXPECT_EQ(seen.find("SECRET"), std::string::npos) << seen;
}

TEST(ElectricityMaps, ParserRejectsAbsurdForecastPoint) {
  auto r = parse_electricitymaps_forecast(
      R"({"zone":"DE","forecast":[{"carbonIntensity":300,"datetime":"2024-01-01T00:00:00.000Z"},)"
      R"({"carbonIntensity":6000,"datetime":"2024-01-01T01:00:00.000Z"}]})",
      "http://x/v3/carbon-intensity/forecast?zone=DE");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("forecast[1]"), std::string::npos) << r.error().message();
  EXPECT_EQ(r.error().path, "http://x/v3/carbon-intensity/forecast");
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

// The documented /v3/power-breakdown/latest body, trimmed.
TEST(ElectricityMaps, CarbonFreeShareIsThePowerBreakdownsFossilFreePercentage) {
  const std::string body =
      R"({"zone":"DE","datetime":"2026-12-07T09:00:00.000Z","powerConsumptionBreakdown":)"
      R"({"nuclear":0,"wind":14000,"solar":300,"gas":9000,"coal":11000,"biomass":4000},)"
      R"("powerConsumptionTotal":45000,"fossilFreePercentage":41,"renewablePercentage":41,)"
      R"("isEstimated":false})";
  auto cfe = parse_electricitymaps_power_breakdown(body, "u");
  ASSERT_TRUE(cfe.ok());
  EXPECT_EQ(**cfe, 41);
  auto unknown = parse_electricitymaps_power_breakdown(R"({"fossilFreePercentage":null})", "u");
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(*unknown);
  EXPECT_FALSE(parse_electricitymaps_power_breakdown(R"({"fossilFreePercentage":140})", "u").ok());
  EXPECT_FALSE(parse_electricitymaps_power_breakdown(R"({"fossilFreePercentage":"41"})", "u").ok());
}

TEST(ElectricityMaps, FetchCarriesTheCarbonFreeShare) {
  FakeGridApi api;
  ASSERT_TRUE(api.running());
  ElectricityMapsProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  ASSERT_TRUE(f.reading) << f.error.message();
  ASSERT_TRUE(f.reading->cfe_percent);
  EXPECT_DOUBLE_EQ(*f.reading->cfe_percent, 62.5);  // the fake's default
  EXPECT_TRUE(f.warnings.empty());
}

}  // namespace
}  // namespace wattprobe
