#include "collectors/units/unit_counter.h"

#include <gtest/gtest.h>

namespace wattprobe {
namespace {

std::vector<ExpositionFamily> parse(const std::string& text) {
  auto r = parse_exposition_text(text, "test");
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : std::vector<ExpositionFamily>{};
}

UnitSpec spec(std::string counter, std::vector<std::pair<std::string, std::string>> match = {}) {
  UnitSpec s;
  s.name = "tokens";
  s.counter = std::move(counter);
  s.match = std::move(match);
  return s;
}

double sum(const CounterSeries& c) {
  double t = 0;
  for (const auto& s : c.series) t += s.second;
  return t;
}

const char* kVllm =
    "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n"
    "# TYPE vllm:generation_tokens_total counter\n"
    "vllm:generation_tokens_total{engine=\"0\",model_name=\"llama\"} 1200\n"
    "vllm:generation_tokens_total{engine=\"1\",model_name=\"llama\"} 800\n"
    "vllm:generation_tokens_total{engine=\"2\",model_name=\"other\"} 50\n"
    "# TYPE vllm:num_requests_running gauge\n"
    "vllm:num_requests_running{engine=\"0\"} 3\n"
    "# TYPE tgi_request_generated_tokens histogram\n"
    "tgi_request_generated_tokens_bucket{le=\"10\"} 4\n"
    "tgi_request_generated_tokens_bucket{le=\"+Inf\"} 9\n"
    "tgi_request_generated_tokens_sum 310\n"
    "tgi_request_generated_tokens_count 9\n";

TEST(UnitCounter, SumsEverySeriesOfTheCounter) {
  CounterSeries c = select_counter(parse(kVllm), spec("vllm:generation_tokens_total"));
  EXPECT_EQ(c.reason, "");
  EXPECT_EQ(c.series.size(), 3u);
  EXPECT_DOUBLE_EQ(sum(c), 2050);
}

TEST(UnitCounter, MatchKeepsOnlySeriesHoldingEveryPair) {
  CounterSeries c =
      select_counter(parse(kVllm), spec("vllm:generation_tokens_total", {{"model_name", "llama"}}));
  EXPECT_DOUBLE_EQ(sum(c), 2000);
  c = select_counter(parse(kVllm), spec("vllm:generation_tokens_total",
                                        {{"model_name", "llama"}, {"engine", "1"}}));
  EXPECT_DOUBLE_EQ(sum(c), 800);
  c = select_counter(parse(kVllm), spec("vllm:generation_tokens_total", {{"model_name", "x"}}));
  EXPECT_EQ(c.reason, "missing_counter");
  EXPECT_NE(c.detail.find("match"), std::string::npos) << c.detail;
}

TEST(UnitCounter, HistogramCountAndSum) {
  EXPECT_DOUBLE_EQ(sum(select_counter(parse(kVllm), spec("tgi_request_generated_tokens_count"))),
                   9);
  EXPECT_DOUBLE_EQ(sum(select_counter(parse(kVllm), spec("tgi_request_generated_tokens_sum"))),
                   310);
  // A bucket is not a count of units.
  EXPECT_EQ(select_counter(parse(kVllm), spec("tgi_request_generated_tokens_bucket")).reason,
            "not_counter");
}

TEST(UnitCounter, RefusesAGaugeAndNamesAMissingCounter) {
  CounterSeries c = select_counter(parse(kVllm), spec("vllm:num_requests_running"));
  EXPECT_EQ(c.reason, "not_counter");
  EXPECT_NE(c.detail.find("gauge"), std::string::npos) << c.detail;
  c = select_counter(parse(kVllm), spec("vllm:prompt_tokens_total"));
  EXPECT_EQ(c.reason, "missing_counter");
  EXPECT_NE(c.detail.find("vllm:prompt_tokens_total"), std::string::npos) << c.detail;
}

TEST(UnitCounter, UntypedTextfileSampleCounts) {
  EXPECT_DOUBLE_EQ(sum(select_counter(parse("jobs_done_total 7\n"), spec("jobs_done_total"))), 7);
}

TEST(UnitCounter, NegativeOrNanIsMalformed) {
  EXPECT_EQ(select_counter(parse("# TYPE a_total counter\na_total -1\n"), spec("a_total")).reason,
            "malformed");
  EXPECT_EQ(select_counter(parse("# TYPE a_total counter\na_total NaN\n"), spec("a_total")).reason,
            "malformed");
}

TEST(CounterTotal, FirstReadingIsTheBaseline) {
  CounterTotal t;
  EXPECT_DOUBLE_EQ(t.update({{"a", 1e9}}), 0);
  EXPECT_DOUBLE_EQ(t.update({{"a", 1e9 + 5}}), 5);
  EXPECT_DOUBLE_EQ(t.total(), 5);
}

TEST(CounterTotal, ARestartCountsItsNewValueNeverNegativeNorHuge) {
  CounterTotal t;
  t.update({{"a", 1000}, {"b", 500}});
  t.update({{"a", 1100}, {"b", 600}});  // +200
  // a restarted (the service came back with 30 done); b kept going.
  EXPECT_DOUBLE_EQ(t.update({{"a", 30}, {"b", 650}}), 80);
  EXPECT_DOUBLE_EQ(t.total(), 280);
  EXPECT_EQ(t.resets(), 1u);
}

TEST(CounterTotal, SeriesAreHandledApartNotAsTheirSum) {
  // Summed first, 1100 + 600 → 10 + 1700 would read as a rise of 10; per series it is a restart
  // of a (+10) and a rise of b (+1100).
  CounterTotal t;
  t.update({{"a", 1100}, {"b", 600}});
  EXPECT_DOUBLE_EQ(t.update({{"a", 10}, {"b", 1700}}), 1110);
}

TEST(CounterTotal, DisappearingSeriesTakesNothingBackAndIsRemembered) {
  CounterTotal t;
  t.update({{"a", 100}, {"b", 100}});
  EXPECT_DOUBLE_EQ(t.update({{"a", 110}}), 10);              // b gone: nothing negative
  EXPECT_DOUBLE_EQ(t.update({{"a", 120}, {"b", 130}}), 40);  // b back, from where it was
  EXPECT_DOUBLE_EQ(t.total(), 50);
}

TEST(CounterTotal, ASeriesFirstSeenLaterIsItsOwnBaseline) {
  CounterTotal t;
  t.update({{"a", 100}});
  EXPECT_DOUBLE_EQ(t.update({{"a", 100}, {"c", 1e12}}), 0);
  EXPECT_DOUBLE_EQ(t.update({{"a", 101}, {"c", 1e12 + 3}}), 4);
}

}  // namespace
}  // namespace wattprobe
