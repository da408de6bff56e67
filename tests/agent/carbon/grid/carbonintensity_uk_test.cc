#include "agent/carbon/grid/carbonintensity_uk.h"

#include <gtest/gtest.h>

#include "tests/support/fake_grid_api.h"

namespace wattprobe {
namespace {

using testing::FakeGridApi;

FakeGridApi& server() {
  static FakeGridApi api;
  return api;
}

GridApiOptions options_for(const FakeGridApi& api) {
  GridApiOptions o;
  o.base_url = api.base_url();
  o.http.connect_timeout_s = 1;
  o.http.total_timeout_s = 1;
  o.http.max_body_bytes = 1 << 20;
  return o;
}

TEST(CarbonIntensityUk, ReadsCurrentHalfHourAndNextDay) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  api.set_mode("ok");
  api.set_value(228);
  CarbonIntensityUkProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_DOUBLE_EQ(f.reading->grams_per_kwh, 228);
  EXPECT_EQ(f.reading->zone, "GB");
  EXPECT_EQ(f.reading->time_ms % 1800000, 0);
  ASSERT_EQ(f.reading->forecast.size(), 4u);
  EXPECT_DOUBLE_EQ(f.reading->forecast[3].grams_per_kwh, 231);
  EXPECT_EQ(f.reading->forecast[1].time_ms - f.reading->forecast[0].time_ms, 1800000);
}

TEST(CarbonIntensityUk, FutureHalfHourUsesItsForecast) {
  GridFetch f = parse_carbonintensity_uk(
      R"({"data":[{"from":"2018-01-20T12:00Z","to":"2018-01-20T12:30Z",)"
      R"("intensity":{"forecast":266,"actual":null,"index":"moderate"}}]})",
      "https://api.carbonintensity.org.uk/intensity");
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_DOUBLE_EQ(f.reading->grams_per_kwh, 266);
  EXPECT_EQ(f.reading->time_ms, 1516449600000);
}

TEST(CarbonIntensityUk, SurvivesEveryBadAnswerAndRecovers) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  GridIntensity grid(std::make_unique<CarbonIntensityUkProvider>(options_for(api)),
                     GridIntensityOptions{});
  testing::check_bad_answers(api, grid, 228, testing::standard_bad_answers());
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

// The documented /generation body.
TEST(CarbonIntensityUk, CarbonFreeShareCountsNuclearWindSolarHydroNotBiomass) {
  const std::string body =
      R"({"data":{"from":"2019-08-12T12:30Z","to":"2019-08-12T13:00Z","generationmix":[)"
      R"({"fuel":"biomass","perc":4.8},{"fuel":"coal","perc":2.5},{"fuel":"imports","perc":8.2},)"
      R"({"fuel":"gas","perc":46.5},{"fuel":"nuclear","perc":16.5},{"fuel":"other","perc":0.3},)"
      R"({"fuel":"hydro","perc":0.7},{"fuel":"solar","perc":12},{"fuel":"wind","perc":8.5}]}})";
  auto cfe = parse_carbonintensity_uk_generation(body, "u");
  ASSERT_TRUE(cfe.ok()) << cfe.error().message();
  EXPECT_NEAR(*cfe, 16.5 + 0.7 + 12 + 8.5, 1e-9);
  EXPECT_FALSE(carbon_free_uk_fuel("biomass"));
  EXPECT_FALSE(parse_carbonintensity_uk_generation(R"({"data":{"generationmix":[]}})", "u").ok());
  EXPECT_FALSE(parse_carbonintensity_uk_generation(
                   R"({"data":{"generationmix":[{"fuel":"wind","perc":30}]}})", "u")
                   .ok());
}

TEST(CarbonIntensityUk, FetchCarriesTheCarbonFreeShare) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  api.set_mode("ok");
  CarbonIntensityUkProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  ASSERT_TRUE(f.reading) << f.error.message();
  ASSERT_TRUE(f.reading->cfe_percent);
  EXPECT_NEAR(*f.reading->cfe_percent, 55, 1e-9);  // the fake's mix
}

}  // namespace
}  // namespace wattprobe
