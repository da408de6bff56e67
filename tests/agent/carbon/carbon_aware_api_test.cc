#include "agent/carbon/carbon_aware_api.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/base/http_endpoint.h"

namespace wattprobe {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1796635440000;  // 2026-12-07T09:24:00Z
constexpr int64_t kHour = 3600000;

struct Rig {
  IntensityHistory history;
  ForecastAnswer answer;
  std::shared_ptr<HttpEndpoint> api;

  Rig() {
    answer.zone = "DE";
    answer.generated_ms = kNow - 60000;
    answer.forecast =
        forecast_from_points({{kNow, 300}, {kNow + kHour, 100}, {kNow + 2 * kHour, 200}});
    api = make_carbon_aware_api(
        {[this](int64_t) { return answer; }, &history, "DE", [] { return kNow; }});
  }

  HttpResponse get(std::string path, std::vector<std::pair<std::string, std::string>> query) {
    HttpRequest r;
    r.method = "GET";
    r.path = std::move(path);
    r.query = std::move(query);
    return api->handle(r);
  }
};

TEST(CarbonAwareApi, BestWindowInTheSdkShape) {
  Rig rig;
  HttpResponse r =
      rig.get("/emissions/forecasts/current", {{"location", "DE"}, {"windowSize", "60"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[0]["windowSize"], 60);
  EXPECT_EQ(j[0]["optimalDataPoints"][0]["timestamp"], "2026-12-07T10:24:00Z");
  EXPECT_EQ(j[0]["optimalDataPoints"][0]["value"], 100.0);
  EXPECT_EQ(j[0]["forecastData"].size(), 3u);
  EXPECT_EQ(j[0]["generatedAt"], "2026-12-07T09:23:00Z");
}

TEST(CarbonAwareApi, UnknownZoneIs404NamingTheKnownOne) {
  Rig rig;
  HttpResponse r = rig.get("/emissions/forecasts/current", {{"location", "FR"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(json::parse(r.body)["detail"].get<std::string>().find("\"DE\""), std::string::npos)
      << r.body;
}

TEST(CarbonAwareApi, BadParametersAre400InTheValidationShape) {
  Rig rig;
  for (auto q : std::vector<std::pair<std::string, std::string>>{
           {"windowSize", "-5"},
           {"windowSize", "1.5"},
           {"dataStartAt", "yesterday"},
           {"dataEndAt", "2026-12-07T09:24:00+25:00"}}) {
    HttpResponse r = rig.get("/emissions/forecasts/current", {q});
    ASSERT_EQ(r.status, 400) << q.first << "=" << q.second;
    json j = json::parse(r.body);
    EXPECT_TRUE(j["errors"].contains(q.first)) << r.body;
  }
}

TEST(CarbonAwareApi, NoForecastIs503WithTheReasonNeverZeros) {
  Rig rig;
  rig.answer.forecast.reset();
  rig.answer.unusable = "the last forecast was fetched too long ago";
  HttpResponse r = rig.get("/emissions/forecasts/current", {});
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("too long ago"), std::string::npos);
  r = rig.get("/emissions/average-carbon-intensity", {{"location", "DE"},
                                                      {"startTime", "2026-12-07T08:00:00Z"},
                                                      {"endTime", "2026-12-07T09:00:00Z"}});
  EXPECT_EQ(r.status, 404) << r.body;
}

TEST(CarbonAwareApi, HistoryAndAverage) {
  Rig rig;
  rig.history.record(kNow - 120000, kNow - 60000, 200);
  rig.history.record(kNow - 60000, kNow, 400);
  HttpResponse r =
      rig.get("/emissions/average-carbon-intensity", {{"location", "de"},
                                                      {"startTime", "2026-12-07T09:22:00Z"},
                                                      {"endTime", "2026-12-07T09:24:00Z"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["carbonIntensity"], 300.0);
  r = rig.get("/emissions/bylocation", {{"location", "DE"}});
  ASSERT_EQ(r.status, 200);
  json j = json::parse(r.body);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[1]["rating"], 400.0);
  EXPECT_EQ(j[1]["duration"], "00:01:00");
}

}  // namespace
}  // namespace wattprobe
