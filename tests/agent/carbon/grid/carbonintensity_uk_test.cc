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

CarbonIntensityUkOptions options_for(const FakeGridApi& api) {
  CarbonIntensityUkOptions o;
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
