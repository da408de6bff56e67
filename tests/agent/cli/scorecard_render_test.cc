#include "agent/cli/scorecard_render.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/base/utc_time.h"

namespace wattprobe {
namespace {

Scorecard sample() {
  Scorecard card;
  card.by = "namespace";
  card.period_name = "2026-11";
  card.start_ms = *parse_utc_date("2026-11-01");
  card.end_ms = *parse_utc_date("2026-12-01");
  card.previous_start_ms = *parse_utc_date("2026-10-01");
  card.previous_end_ms = card.start_ms;
  GroupFigures shop;
  shop.group = "shop";
  shop.previous.energy_joules = 100 * 3.6e6;
  shop.previous.operational_grams = 30000;
  shop.current.energy_joules = 120 * 3.6e6;
  shop.current.operational_grams = 40000;
  shop.current.embodied_grams = 600;
  GroupFigures odd;
  odd.group = "<script>|x";
  odd.current.energy_joules = 3.6e6;
  odd.current.operational_grams = 10;
  odd.lower_bound = {"host h5 stopped reporting at 2026-11-15T00:00:00Z"};
  card.groups = {shop, odd};
  card.quality.stopped.push_back({"h5", *parse_utc_date("2026-11-15"), 16 * 86400.0});
  card.quality.silent.push_back({"h3<", 72 * 3600.0, false});
  card.queries.push_back(
      {"operational_grams/current", "sum by (namespace) (x)", card.end_ms, 2, {}});
  finish_scorecard(card);
  return card;
}

TEST(ScorecardRender, JsonHoldsEveryFigureAndItsQuery) {
  std::ostringstream out;
  render_scorecard_json(sample(), 5, out);
  auto j = nlohmann::json::parse(out.str());
  EXPECT_EQ(j["period"]["start"], "2026-11-01T00:00:00Z");
  EXPECT_EQ(j["groups"][0]["group"], "shop");
  EXPECT_DOUBLE_EQ(j["groups"][0]["current"]["grams"].get<double>(), 40600);
  EXPECT_DOUBLE_EQ(j["groups"][0]["change"]["energy_term_grams"].get<double>(), 6000);
  EXPECT_DOUBLE_EQ(j["groups"][0]["change"]["intensity_term_grams"].get<double>(), 4000);
  EXPECT_TRUE(j["groups"][1]["lower_bound"].get<bool>());
  EXPECT_TRUE(j["groups"][1]["change"]["percent"].is_null());
  EXPECT_TRUE(j["total"]["lower_bound"].get<bool>());
  EXPECT_EQ(j["queries"][0]["promql"], "sum by (namespace) (x)");
  EXPECT_FALSE(j["partial"].get<bool>());
  EXPECT_EQ(j["data_quality"]["stopped_hosts"][0]["last_seen"], "2026-11-15T00:00:00Z");
  EXPECT_EQ(j["data_quality"]["silent_hosts"][0]["host"], "h3<");
  EXPECT_DOUBLE_EQ(j["data_quality"]["silent_hosts"][0]["silent_seconds"].get<double>(), 259200);
}

TEST(ScorecardRender, MarkdownMarksLowerBoundsBesideTheFigure) {
  std::ostringstream out;
  render_scorecard_markdown(sample(), 5, out);
  const std::string md = out.str();
  EXPECT_NE(md.find("# Carbon scorecard 2026-11"), std::string::npos);
  EXPECT_NE(md.find("| shop | 40.60 kg |"), std::string::npos) << md;
  // The odd group's name cannot break the table, and its figure says it is a lower bound.
  EXPECT_NE(md.find("\\<script>\\|x | ≥ 10.0 g |"), std::string::npos) << md;
  EXPECT_NE(md.find("lower bound: host h5 stopped reporting"), std::string::npos);
  EXPECT_NE(md.find("| shop | +10.60 kg | +6.00 kg | +4.00 kg | +600.0 g |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("h5: last seen 2026-11-15T00:00:00Z, silent 16.0 days"), std::string::npos);
  EXPECT_NE(md.find("h3\\<: silent 72 h (its groups' figures may be lower bounds)"),
            std::string::npos)
      << md;
}

TEST(ScorecardRender, HtmlIsSelfContainedWithTwoSvgCharts) {
  std::ostringstream out;
  render_scorecard_html(sample(), 5, out);
  const std::string html = out.str();
  EXPECT_NE(html.find("<svg id=\"chart-groups\""), std::string::npos);
  EXPECT_NE(html.find("<svg id=\"chart-waterfall\""), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);  // the group name is escaped
  EXPECT_NE(html.find("&lt;script&gt;|x"), std::string::npos);
  EXPECT_NE(html.find("<li>h3&lt;: silent 72 h</li>"), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
}

TEST(ScorecardRender, PartialAnswerIsSaidAtTheTop) {
  Scorecard card = sample();
  card.queries[0].warnings = {"store 3 did not answer"};
  std::ostringstream md, json;
  render_scorecard_markdown(card, 5, md);
  render_scorecard_json(card, 5, json);
  EXPECT_NE(md.str().find("**Partial answer:**"), std::string::npos);
  auto j = nlohmann::json::parse(json.str());
  EXPECT_TRUE(j["partial"].get<bool>());
  EXPECT_EQ(j["queries"][0]["warnings"][0], "store 3 did not answer");
}

}  // namespace
}  // namespace wattprobe
