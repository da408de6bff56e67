#include "agent/cli/scorecard_query.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "agent/base/utc_time.h"
#include "agent/cli/scorecard.h"
#include "tests/support/fake_http_receiver.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::FakeHttpReceiver;

int64_t day(const char* d) { return *parse_utc_date(d); }

TEST(PromAnswer, ParsesAVectorWithLabelsAndWarnings) {
  auto a = parse_prom_answer(
      R"({"status":"success","warnings":["store eu-1 did not answer"],"data":{"resultType":"vector",
      "result":[{"metric":{"namespace":"shop"},"value":[1764547200,"12.5"]},
                {"metric":{},"value":[1764547200,"NaN"]}]}})");
  ASSERT_TRUE(a.ok()) << a.error().message();
  ASSERT_EQ(a->samples.size(), 2u);
  EXPECT_EQ(a->samples[0].labels.at("namespace"), "shop");
  EXPECT_DOUBLE_EQ(a->samples[0].value, 12.5);
  EXPECT_TRUE(std::isnan(a->samples[1].value));
  EXPECT_TRUE(a->partial());
}

TEST(PromAnswer, ErrorStatusGivesTheServersReason) {
  auto a = parse_prom_answer(
      R"({"status":"error","errorType":"bad_data","error":"parse error at char 4"})");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.error().detail.find("bad_data: parse error at char 4"), std::string::npos);
}

TEST(PromAnswer, RefusesOtherShapes) {
  for (
      const char* body :
      {"", "[]", "{\"status\":1}", R"({"status":"success"})",
       R"({"status":"success","data":{"resultType":"matrix","result":[]}})",
       R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}})",
       R"({"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1x"]}]}})",
       R"({"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"1"]}]}})",
       R"({"status":"success","warnings":"x","data":{"resultType":"vector","result":[]}})"}) {
    EXPECT_FALSE(parse_prom_answer(body).ok()) << body;
  }
}

TEST(PromAnswer, UrlEncodesAQuery) {
  EXPECT_EQ(url_encode("sum by (a) (x{b=~\"c|d\"}[30d])"),
            "sum%20by%20%28a%29%20%28x%7Bb%3D~%22c%7Cd%22%7D%5B30d%5D%29");
}

TEST(ScorecardOptions, MonthAndTheMonthBefore) {
  auto o = parse_scorecard_options({"--prometheus", "http://p:9090", "--month", "2026-01"},
                                   day("2026-12-07"));
  EXPECT_EQ(o.start_ms, day("2026-01-01"));
  EXPECT_EQ(o.end_ms, day("2026-02-01"));
  EXPECT_EQ(o.previous_start_ms, day("2025-12-01"));
  EXPECT_EQ(o.previous_end_ms, day("2026-01-01"));
  EXPECT_EQ(o.period_name, "2026-01");
  EXPECT_EQ(o.by, "namespace");
  // Without a period: the last full month.
  auto last = parse_scorecard_options({"--prometheus", "http://p"}, day("2027-01-15"));
  EXPECT_EQ(last.period_name, "2026-12");
  EXPECT_EQ(last.end_ms, day("2027-01-01"));
}

TEST(ScorecardOptions, SinceUntilComparesWithTheSameLengthBefore) {
  auto o = parse_scorecard_options({"--prometheus", "http://p", "--since", "2026-11-10", "--until",
                                    "2026-11-12", "--by", "team", "--join-pod-labels", "team"},
                                   day("2026-12-07"));
  EXPECT_EQ(o.previous_start_ms, day("2026-11-08"));
  EXPECT_EQ(o.previous_end_ms, day("2026-11-10"));
  const std::string q = scorecard_group_query(o, "increase(x[1d])");
  EXPECT_NE(q.find("sum by (label_team) "), std::string::npos) << q;
  EXPECT_NE(q.find("group_left(label_team)"), std::string::npos) << q;
  EXPECT_NE(q.find("or on (namespace, pod)"), std::string::npos) << q;
}

TEST(ScorecardOptions, UsageErrorsNameTheFlag) {
  const int64_t now = day("2026-12-07");
  auto refused = [&](std::vector<std::string> args, const std::string& flag) {
    try {
      parse_scorecard_options(args, now);
      ADD_FAILURE() << "accepted " << flag;
    } catch (const ScorecardUsageError& e) {
      EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
    }
  };
  refused({"--month", "2026-11"}, "--prometheus");
  refused({"--prometheus", "ftp://p"}, "--prometheus");
  refused({"--prometheus", "http://u:pw@p"}, "credentials");
  refused({"--prometheus", "http://p", "--month", "2026-13"}, "--month");
  refused({"--prometheus", "http://p", "--month", "2026-11", "--since", "-1d"}, "--since");
  refused({"--prometheus", "http://p", "--by", "team\"}) or vector(1"}, "--by");
  refused({"--prometheus", "http://p", "--format", "pdf"}, "--format");
  refused({"--prometheus", "http://p", "--timeout", "0s"}, "--timeout");
  refused({"--prometheus", "http://p", "--prometheus-bearer-token-file", "/nonexistent"},
          "--prometheus-bearer-token-file");
  refused({"--prometheus", "http://p", "--replacement-embodied-kg", "300"},
          "--replacement-power-ratio");
}

std::string vector_body(const std::string& warnings) {
  return R"({"status":"success",)" + warnings +
         R"("data":{"resultType":"vector","result":[{"metric":{"namespace":"shop","instance":"h1"},"value":[1,"10"]}]}})";
}

TEST(ScorecardGather, PartialAnswerIsMarkedOnEveryFigureBuiltFromIt) {
  FakeHttpReceiver server([](const FakeHttpReceiver::Request&) {
    return FakeHttpReceiver::answer(200, {{"Content-Type", "application/json"}},
                                    vector_body(R"("warnings":["store eu-1 did not answer"],)"));
  });
  auto o = parse_scorecard_options({"--prometheus", server.url(""), "--month", "2026-11"},
                                   day("2026-12-07"));
  PromClient client(o.prometheus);
  auto card = gather_scorecard(o, client, day("2026-12-07"));
  ASSERT_TRUE(card.ok()) << card.error().message();
  EXPECT_TRUE(card->partial());
  ASSERT_EQ(card->groups.size(), 1u);
  const auto& reasons = card->groups[0].lower_bound;
  EXPECT_TRUE(std::any_of(reasons.begin(), reasons.end(), [](const std::string& r) {
    return r.find("partial answer for operational_grams/current: store eu-1 did not answer") !=
           std::string::npos;
  }));
  // The fake server names h1 for every question, so h1 is also "stopped" in both periods.
  EXPECT_TRUE(std::any_of(reasons.begin(), reasons.end(), [](const std::string& r) {
    return r.find("host h1 stopped reporting at") != std::string::npos &&
           r.find("(in the period before)") != std::string::npos;
  }));
  // Bounded: the number of queries does not depend on the fleet.
  EXPECT_LT(card->queries.size(), 45u);
  auto requests = server.requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_NE(requests[0].target.find("/api/v1/query?query="), std::string::npos);
  EXPECT_NE(requests[0].target.find("&time=1796083200"), std::string::npos);
}

TEST(ScorecardGather, ServerErrorAndTimeoutNameTheQuery) {
  FakeHttpReceiver failing([](const FakeHttpReceiver::Request&) {
    return FakeHttpReceiver::answer(
        503, {}, R"({"status":"error","errorType":"unavailable","error":"overloaded"})");
  });
  auto o = parse_scorecard_options({"--prometheus", failing.url(""), "--month", "2026-11"},
                                   day("2026-12-07"));
  PromClient client(o.prometheus);
  auto card = gather_scorecard(o, client, day("2026-12-07"));
  ASSERT_FALSE(card.ok());
  EXPECT_NE(card.error().detail.find("HTTP 503: status \"error\", unavailable: overloaded"),
            std::string::npos)
      << card.error().detail;
  EXPECT_NE(card.error().detail.find("query: sum by (namespace)"), std::string::npos);

  FakeHttpReceiver hanging(
      [](const FakeHttpReceiver::Request&) { return FakeHttpReceiver::hang(); });
  auto h = parse_scorecard_options(
      {"--prometheus", hanging.url(""), "--month", "2026-11", "--timeout", "1s"},
      day("2026-12-07"));
  PromClient slow(h.prometheus);
  auto timed_out = gather_scorecard(h, slow, day("2026-12-07"));
  ASSERT_FALSE(timed_out.ok());
  EXPECT_NE(timed_out.error().detail.find("timeout"), std::string::npos)
      << timed_out.error().detail;
}

TEST(ScorecardGather, BearerTokenFromItsFile) {
  testing::TempTree tree;
  tree.write("token", "s3cret\n");
  FakeHttpReceiver server([](const FakeHttpReceiver::Request&) {
    return FakeHttpReceiver::answer(200, {}, vector_body(""));
  });
  auto o = parse_scorecard_options({"--prometheus", server.url(""), "--month", "2026-11",
                                    "--prometheus-bearer-token-file", tree.path("token").string()},
                                   day("2026-12-07"));
  PromClient client(o.prometheus);
  ASSERT_TRUE(client.instant("up", day("2026-12-01")).ok());
  EXPECT_EQ(server.requests().at(0).headers.at("authorization"), "Bearer s3cret");
}

}  // namespace
}  // namespace wattprobe
