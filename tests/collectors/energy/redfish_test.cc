#include "collectors/energy/redfish.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

namespace wattprobe {
namespace {

const std::string kMockup = std::string(WATTPROBE_TEST_DATA) + "/redfish/public-rackmount1";

// DMTF's mockup as a BMC serves it: /redfish/v1/<path> is <path>/index.json.
Result<nlohmann::json> mockup_get(const std::string& path) {
  std::string rel = path.substr(std::string("/redfish/v1").size());
  std::ifstream in(kMockup + rel + "/index.json");
  if (!in) return Error{ErrorKind::absent, path, "not in the mockup"};
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(Redfish, FindsEveryReadingOfTheMockupAndTakesTheEnergyCounterFirst) {
  auto found = discover_redfish(mockup_get);
  ASSERT_TRUE(found.ok()) << found.error().message();
  ASSERT_EQ(found->size(), 1u);
  const RedfishChassis& c = found->front();
  EXPECT_EQ(c.id, "1U");
  ASSERT_TRUE(c.best);
  // The chassis' TotalEnergy sensor (kWh); the supplies' own PS1Energy is a part, not the whole.
  EXPECT_EQ(c.best->kind, RedfishKind::energy_counter);
  EXPECT_EQ(c.best->what, "Sensors/TotalEnergy (EnergykWh)");
  ASSERT_TRUE(c.power);
  EXPECT_EQ(c.power->kind, RedfishKind::supply_input);
  // Bay2 has no Metrics in the mockup: the one supply that reports is summed.
  EXPECT_EQ(c.power->urls.size(), 1u);

  auto energy = read_redfish(*c.best, mockup_get);
  ASSERT_TRUE(energy.ok()) << energy.error().message();
  EXPECT_DOUBLE_EQ(energy->value, 325675 * 3.6e6);
}

TEST(Redfish, ReadsEachKindOfReadingFromTheMockup) {
  RedfishPlan control{"1U", RedfishKind::power_control,       RedfishShape::power_control,
                      "",   {"/redfish/v1/Chassis/1U/Power"}, 1,
                      ""};
  EXPECT_DOUBLE_EQ(read_redfish(control, mockup_get)->value, 344);
  RedfishPlan em{"1U",
                 RedfishKind::chassis_power,
                 RedfishShape::metrics_field,
                 "PowerWatts",
                 {"/redfish/v1/Chassis/1U/EnvironmentMetrics"},
                 1,
                 ""};
  EXPECT_DOUBLE_EQ(read_redfish(em, mockup_get)->value, 374);
  RedfishPlan sensor{"1U",
                     RedfishKind::chassis_power,
                     RedfishShape::sensor,
                     "",
                     {"/redfish/v1/Chassis/1U/Sensors/TotalPower"},
                     1,
                     ""};
  auto v = read_redfish(sensor, mockup_get);
  ASSERT_TRUE(v.ok());
  EXPECT_DOUBLE_EQ(v->value, 374);
  ASSERT_TRUE(v->reading_ms);
  EXPECT_EQ(*v->reading_ms, *parse_redfish_time("2019-08-12T22:14:33Z"));
}

TEST(Redfish, RefusesANegativeOrMissingReading) {
  auto neg = [](const std::string& p) -> Result<nlohmann::json> {
    return nlohmann::json{{"@odata.id", p}, {"PowerWatts", {{"Reading", -5}}}};
  };
  RedfishPlan em{"1",
                 RedfishKind::chassis_power,
                 RedfishShape::metrics_field,
                 "PowerWatts",
                 {"/redfish/v1/Chassis/1/EnvironmentMetrics"},
                 1,
                 ""};
  auto v = read_redfish(em, neg);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().kind, ErrorKind::malformed);
  EXPECT_NE(v.error().detail.find("PowerWatts.Reading"), std::string::npos);
  auto text = [](const std::string&) -> Result<nlohmann::json> {
    return nlohmann::json{{"PowerWatts", {{"Reading", "300"}}}};
  };
  EXPECT_FALSE(read_redfish(em, text).ok());
}

TEST(Redfish, ParsesReadingTimes) {
  EXPECT_EQ(parse_redfish_time("1970-01-01T00:00:01Z"), 1000);
  EXPECT_EQ(parse_redfish_time("1970-01-01T01:00:01.250+01:00"), 1250);
  EXPECT_EQ(parse_redfish_time("1970-01-01T00:00:00-00:30"), 1800000);
  EXPECT_FALSE(parse_redfish_time("1970-01-01 00:00:01Z"));
  EXPECT_FALSE(parse_redfish_time("1970-01-01T00:00:01"));
  EXPECT_FALSE(parse_redfish_time("1970-01-01T00:00:01Zjunk"));
}

TEST(PlatformEnergyTrack, PowerHoldsFromItsReadingTimeUntilTheNext) {
  PlatformEnergyTrack t;
  t.power(100, 0, 0);
  EXPECT_DOUBLE_EQ(t.energy(10), 1000);
  // A reading taken at 8 s, seen at 10 s: 200 W from 8 s; the 200 J booked at 100 W over
  // 8..10 s that should have been 400 J come back.
  t.power(200, 8, 10);
  EXPECT_DOUBLE_EQ(t.energy(10), 1200);
  EXPECT_DOUBLE_EQ(t.energy(20), 800 + 200 * 12);
}

TEST(PlatformEnergyTrack, NeverGoesBackwards) {
  PlatformEnergyTrack t;
  t.power(300, 0, 0);
  EXPECT_DOUBLE_EQ(t.energy(10), 3000);
  t.power(0, 5, 10);  // the power fell at 5 s: the truth is 1500 J, the total holds at 3000
  EXPECT_DOUBLE_EQ(t.energy(11), 3000);
  t.power(600, 11, 11);
  EXPECT_DOUBLE_EQ(t.energy(14), 3300);  // 1500 + 600 × 3
}

TEST(PlatformEnergyTrack, ACounterSteppingOnceAMinuteAdvancesBetweenItsSteps) {
  PlatformEnergyTrack t;
  t.counter(1000, 0, 0);
  t.counter(1000 + 60 * 250, 60, 60);  // 250 W over the first minute
  EXPECT_DOUBLE_EQ(t.energy(60), 15000);
  EXPECT_DOUBLE_EQ(t.energy(90), 15000 + 30 * 250);  // advancing at the last rate
  t.counter(1000 + 60 * 250 + 60 * 200, 120, 120);   // the next minute drew 200 W
  EXPECT_DOUBLE_EQ(t.energy(120), 27000);
  EXPECT_DOUBLE_EQ(t.energy(150), 27000 + 30 * 200);
  // A minute at 100 W: advanced to 33000 at the last rate by 180 s, the counter says 33000.
  t.counter(1000 + 27000 + 60 * 100, 180, 181);
  EXPECT_DOUBLE_EQ(t.energy(181), 33100);
  // It stops: advanced no further than two of its refresh intervals.
  EXPECT_DOUBLE_EQ(t.energy(1000), 33000 + 120 * 100);
}

TEST(PlatformEnergyTrack, ACounterOverTakenByItsAdvanceHoldsUntilItPasses) {
  PlatformEnergyTrack t;
  t.counter(0, 0, 0);
  t.counter(6000, 60, 60);  // 100 W
  EXPECT_DOUBLE_EQ(t.energy(110), 11000);
  t.counter(6600, 120, 120);               // only 10 W in that minute
  EXPECT_DOUBLE_EQ(t.energy(120), 11000);  // held, never lower
  t.counter(6600, 120, 125);
  EXPECT_DOUBLE_EQ(t.energy(125), 11000);
  t.counter(200, 130, 130);   // reset: counts on from its new value, nothing lost or doubled
  t.counter(1400, 190, 190);  // 20 W
  EXPECT_DOUBLE_EQ(t.energy(190), 11000);
  EXPECT_GE(t.energy(10000), 11000);
}

TEST(PlatformEnergyTrack, UsesTheBmcPowerBetweenSteps) {
  PlatformEnergyTrack t;
  t.rate_hint(400);
  t.counter(0, 0, 0);
  EXPECT_DOUBLE_EQ(t.energy(30), 12000);
}

// A BMC with a session service: tokens expire after `expire_after` uses.
class FakeBmc : public RedfishTransport {
 public:
  int expire_after = 1000;
  int refuse_logins = 0;
  bool sessions = true;
  std::vector<std::string> log;
  std::map<std::string, std::string> docs;
  RedfishAnswer exchange(const RedfishRequest& r) override {
    log.push_back(r.method + " " + r.path + (r.auth_token.empty() ? "" : " token") +
                  (r.basic ? " basic" : ""));
    RedfishAnswer a;
    if (r.method == "GET" && r.path == "/redfish/v1") {
      a.status = 200;
      a.body = sessions
                   ? R"({"Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}})"
                   : "{}";
      return a;
    }
    if (r.method == "POST") {
      auto body = nlohmann::json::parse(r.body);
      if (refuse_logins > 0 || body["Password"] != "pw") {
        --refuse_logins;
        a.status = 401;
        return a;
      }
      a.status = 201;
      a.auth_token = "t" + std::to_string(++tokens);
      uses = 0;
      a.location =
          "https://bmc.example/redfish/v1/SessionService/Sessions/" + std::to_string(tokens);
      return a;
    }
    if (r.method == "DELETE") {
      a.status = 204;
      return a;
    }
    bool authorised =
        r.basic ? !sessions
                : (!r.auth_token.empty() && r.auth_token == "t" + std::to_string(tokens) &&
                   ++uses <= expire_after);
    if (!authorised) {
      a.status = 401;
      return a;
    }
    auto it = docs.find(r.path);
    a.status = it == docs.end() ? 404 : 200;
    if (it != docs.end()) a.body = it->second;
    return a;
  }
  int tokens = 0, uses = 0;
};

TEST(RedfishClient, LogsInAgainOnA401AndLogsOutOnTheSessionPathOnly) {
  auto bmc = std::make_unique<FakeBmc>();
  FakeBmc* b = bmc.get();
  b->docs["/redfish/v1/Chassis"] = R"({"Members":[]})";
  b->expire_after = 1;
  RedfishClient client(std::move(bmc), "reader", "pw");
  ASSERT_TRUE(client.get("/redfish/v1/Chassis").ok());
  EXPECT_EQ(client.auth(), "session");
  auto again = client.get("/redfish/v1/Chassis");  // token expired: 401, new login, retried
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(client.logins(), 2u);
  client.logout();
  EXPECT_EQ(b->log.back(), "DELETE /redfish/v1/SessionService/Sessions/2 token");
}

TEST(RedfishClient, ARefusedLoginIsAnErrorThatNamesNoCredential) {
  auto bmc = std::make_unique<FakeBmc>();
  bmc->refuse_logins = 1;
  bmc->docs["/redfish/v1/Chassis"] = R"({"Members":[]})";
  RedfishClient client(std::move(bmc), "reader", "pw");
  auto first = client.get("/redfish/v1/Chassis");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().kind, ErrorKind::permission);
  EXPECT_EQ(first.error().message().find("pw"), std::string::npos);
  EXPECT_EQ(first.error().message().find("reader"), std::string::npos);
  EXPECT_TRUE(client.get("/redfish/v1/Chassis").ok());  // the next poll logs in
}

TEST(RedfishClient, UsesBasicAuthWithoutASessionService) {
  auto bmc = std::make_unique<FakeBmc>();
  bmc->sessions = false;
  bmc->docs["/redfish/v1/Chassis"] = R"({"Members":[]})";
  FakeBmc* b = bmc.get();
  RedfishClient client(std::move(bmc), "reader", "pw");
  ASSERT_TRUE(client.get("/redfish/v1/Chassis").ok());
  EXPECT_EQ(client.auth(), "basic");
  EXPECT_EQ(b->log.back(), "GET /redfish/v1/Chassis basic");
}

TEST(RedfishClient, RefusesAnAnswerThatIsNotAJsonObject) {
  auto bmc = std::make_unique<FakeBmc>();
  bmc->docs["/redfish/v1/Chassis"] = R"({"Members":[)";
  RedfishClient client(std::move(bmc), "reader", "pw");
  auto r = client.get("/redfish/v1/Chassis");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::malformed);
}

TEST(Redfish, BaseUrlIsCheckedStrictly) {
  EXPECT_EQ(*redfish_base_url("https://bmc:8443/redfish/v1"), "https://bmc:8443");
  EXPECT_EQ(*redfish_base_url("https://10.0.0.1"), "https://10.0.0.1");
  EXPECT_FALSE(redfish_base_url("https://root:calvin@bmc").ok());
  EXPECT_FALSE(redfish_base_url("ftp://bmc").ok());
  EXPECT_FALSE(redfish_base_url("https://bmc/other").ok());
  EXPECT_FALSE(redfish_base_url("https://bmc/?x=1").ok());
}

// Two chassis with power data and no --redfish-chassis: refused, naming both.
TEST(RedfishSource, SeveralChassisWithPowerAreRefusedListingThem) {
  auto bmc = std::make_unique<FakeBmc>();
  std::map<std::string, std::string> d;
  d["/redfish/v1/Chassis"] =
      R"({"Members":[{"@odata.id":"/redfish/v1/Chassis/Blade1"},{"@odata.id":"/redfish/v1/Chassis/Blade2"}]})";
  for (std::string id : {"Blade1", "Blade2"}) {
    d["/redfish/v1/Chassis/" + id] = R"({"EnvironmentMetrics":{"@odata.id":"/redfish/v1/Chassis/)" +
                                     id + R"(/EnvironmentMetrics"}})";
    d["/redfish/v1/Chassis/" + id + "/EnvironmentMetrics"] = R"({"PowerWatts":{"Reading":120}})";
  }
  bmc->docs = d;
  class Root : public RedfishTransport {
   public:
    explicit Root(std::unique_ptr<FakeBmc> b) : b_(std::move(b)) {}
    RedfishAnswer exchange(const RedfishRequest& r) override {
      if (r.method == "GET" && r.path == "/redfish/v1") {
        RedfishAnswer a;
        a.status = 200;
        a.body =
            R"({"Chassis":{"@odata.id":"/redfish/v1/Chassis"},"Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}})";
        return a;
      }
      return b_->exchange(r);
    }
    std::unique_ptr<FakeBmc> b_;
  };
  std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/u") << "reader\n";
  std::ofstream(dir + "/p") << "pw\n";
  RedfishOptions o;
  o.url = "https://bmc.example";
  o.user_file = dir + "/u";
  o.password_file = dir + "/p";
  {
    RedfishSource s(o, std::make_unique<Root>(std::move(bmc)));
    try {
      s.probe();
      FAIL() << "expected SourceUsageError";
    } catch (const SourceUsageError& e) {
      EXPECT_NE(std::string(e.what()).find("Blade1"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find("Blade2"), std::string::npos);
    }
  }
  auto bmc2 = std::make_unique<FakeBmc>();
  bmc2->docs = d;
  o.chassis = "Blade2";
  RedfishSource s(o, std::make_unique<Root>(std::move(bmc2)));
  Availability a = s.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("chassis Blade2"), std::string::npos);
  EXPECT_NE(a.reason.find("integrated power"), std::string::npos);
  s.poll_once();
  std::vector<Family> f;
  s.append_families(f);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[0].name, "wattprobe_redfish_info");
  EXPECT_DOUBLE_EQ(f[1].series[0].value, 120);
}

}  // namespace
}  // namespace wattprobe
