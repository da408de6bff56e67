#include "agent/carbon/grid/watttime.h"

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
  o.zone = "CAISO_NORTH";
  o.username = FakeGridApi::kWattTimeUser;
  o.secret = FakeGridApi::kWattTimePassword;
  o.http.connect_timeout_s = 1;
  o.http.total_timeout_s = 1;
  o.http.max_body_bytes = 1 << 20;
  return o;
}

TEST(WattTime, LogsInOnceAndConvertsLbsPerMwhToGramsPerKwh) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  api.set_mode("ok");
  api.set_value(400);  // the server sends 400 / 0.45359237 lbs/MWh (+i per point)
  int logins = api.hits("/login");
  WattTimeProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  ASSERT_TRUE(f.reading) << f.error.message();
  EXPECT_NEAR(f.reading->grams_per_kwh, 400, 1e-5);
  EXPECT_EQ(f.reading->signal, "marginal");
  EXPECT_EQ(f.reading->zone, "CAISO_NORTH");
  ASSERT_EQ(f.reading->forecast.size(), 4u);
  // One more lb/MWh per point is 0.45359237 g/kWh.
  EXPECT_NEAR(f.reading->forecast[1].grams_per_kwh - f.reading->forecast[0].grams_per_kwh,
              0.45359237, 1e-5);
  EXPECT_EQ(f.reading->forecast[1].time_ms - f.reading->forecast[0].time_ms, 300000);
  ASSERT_TRUE(provider.fetch(wall_ms()).reading);
  EXPECT_EQ(api.hits("/login"), logins + 1) << "the 30-minute token is reused";
}

TEST(WattTime, RefusedLoginIsUnauthorized) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  api.set_mode("login401");
  WattTimeProvider provider(options_for(api));
  GridFetch f = provider.fetch(wall_ms());
  api.set_mode("ok");
  EXPECT_FALSE(f.reading);
  EXPECT_EQ(f.reason, "unauthorized");
  EXPECT_NE(f.error.path.find("/login"), std::string::npos);
  EXPECT_EQ(f.error.message().find("SECRET"), std::string::npos);
}

TEST(WattTime, SurvivesEveryBadAnswerAndRecovers) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  GridIntensity grid(std::make_unique<WattTimeProvider>(options_for(api)), GridIntensityOptions{});
  auto answers = testing::standard_bad_answers();
  std::string seen = testing::check_bad_answers(api, grid, 400, answers);
  EXPECT_EQ(seen.find("SECRET"), std::string::npos) << seen;
}

TEST(WattTime, RejectsOtherUnits) {
  GridFetch f =
      parse_watttime_forecast(R"({"data":[{"point_time":"2024-01-01T00:00:00+00:00","value":900}],)"
                              R"("meta":{"units":"kg_co2_per_mwh"}})",
                              "http://x/v3/forecast");
  EXPECT_FALSE(f.reading);
  EXPECT_EQ(f.reason, "malformed");
  EXPECT_NE(f.error.detail.find("lbs_co2_per_mwh"), std::string::npos);
}

}  // namespace
}  // namespace wattprobe
