#include "agent/base/exposition_text.h"

#include <gtest/gtest.h>

#include <cmath>

#include "exporters/prometheus_text.h"

namespace wattprobe {
namespace {

constexpr std::string_view kSource = "http://127.0.0.1:9887/metrics";

std::vector<ExpositionFamily> parse_ok(std::string_view text) {
  auto r = parse_exposition_text(text, kSource);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return r.ok() ? *r : std::vector<ExpositionFamily>{};
}

TEST(ExpositionText, ReadsFamiliesLabelsAndEscapes) {
  auto families = parse_ok(
      "# HELP wattprobe_workload_power_watts Workload power \\\\ over\\nthe tick.\n"
      "# TYPE wattprobe_workload_power_watts gauge\n"
      "wattprobe_workload_power_watts{workload=\"a \\\"quoted\\\" \\\\ "
      "name\\n\",domain=\"package\"} 12.5\n"
      "wattprobe_workload_power_watts{ workload = \"b\" , domain=\"dram\", } 3e-1 1700000000000\n"
      "\n"
      "# an ordinary comment\n"
      "untyped_total 7\n");
  ASSERT_EQ(families.size(), 2u);
  const ExpositionFamily& power = families[0];
  EXPECT_EQ(power.name, "wattprobe_workload_power_watts");
  EXPECT_EQ(power.help, "Workload power \\ over\nthe tick.");
  EXPECT_EQ(power.type, ExpositionType::gauge);
  ASSERT_EQ(power.samples.size(), 2u);
  EXPECT_EQ(power.samples[0].labels,
            (Labels{{"workload", "a \"quoted\" \\ name\n"}, {"domain", "package"}}));
  EXPECT_EQ(power.samples[0].value, 12.5);
  EXPECT_FALSE(power.samples[0].timestamp_ms);
  EXPECT_EQ(power.samples[1].labels, (Labels{{"workload", "b"}, {"domain", "dram"}}));
  EXPECT_DOUBLE_EQ(power.samples[1].value, 0.3);
  EXPECT_EQ(power.samples[1].timestamp_ms, 1700000000000);
  EXPECT_EQ(families[1].name, "untyped_total");
  EXPECT_EQ(families[1].type, ExpositionType::untyped);
}

TEST(ExpositionText, ReadsNaNAndInfinities) {
  auto families = parse_ok(
      "# TYPE g gauge\n"
      "g{v=\"nan\"} NaN\ng{v=\"pinf\"} +Inf\ng{v=\"ninf\"} -Inf\ng{v=\"inf\"} Inf\n"
      "g{v=\"neg\"} -0.5e3\n");
  ASSERT_EQ(families.size(), 1u);
  const auto& s = families[0].samples;
  ASSERT_EQ(s.size(), 5u);
  EXPECT_TRUE(std::isnan(s[0].value));
  EXPECT_EQ(s[1].value, INFINITY);
  EXPECT_EQ(s[2].value, -INFINITY);
  EXPECT_EQ(s[3].value, INFINITY);
  EXPECT_EQ(s[4].value, -500);
}

TEST(ExpositionText, GroupsHistogramLinesIntoOneFamily) {
  auto families = parse_ok(
      "# TYPE tick_seconds histogram\n"
      "tick_seconds_bucket{le=\"0.001\"} 3\n"
      "tick_seconds_bucket{le=\"0.01\"} 5\n"
      "tick_seconds_bucket{le=\"+Inf\"} 6\n"
      "tick_seconds_sum 0.042\n"
      "tick_seconds_count 6\n"
      "after 1\n");
  ASSERT_EQ(families.size(), 2u);
  EXPECT_EQ(families[0].samples.size(), 5u);
  auto snapshot = to_snapshot_families(families);
  ASSERT_EQ(snapshot.size(), 2u);
  ASSERT_TRUE(snapshot[0].histogram);
  EXPECT_EQ(snapshot[0].histogram->bounds, (std::vector<double>{0.001, 0.01}));
  EXPECT_EQ(snapshot[0].histogram->cumulative, (std::vector<uint64_t>{3, 5}));
  EXPECT_EQ(snapshot[0].histogram->count, 6u);
  EXPECT_DOUBLE_EQ(snapshot[0].histogram->sum, 0.042);
  EXPECT_EQ(snapshot[1].type, MetricType::gauge);  // untyped reads as a gauge
}

TEST(ExpositionText, SnapshotFamiliesLeaveOutSummariesAndLabelledHistograms) {
  auto families = parse_ok(
      "# TYPE s summary\n"
      "s{quantile=\"0.5\"} 1\ns_sum 2\ns_count 3\n"
      "# TYPE h histogram\n"
      "h_bucket{path=\"/a\",le=\"+Inf\"} 1\nh_sum{path=\"/a\"} 1\nh_count{path=\"/a\"} 1\n"
      "# TYPE c_total counter\n"
      "c_total 4\n");
  auto snapshot = to_snapshot_families(families);
  ASSERT_EQ(snapshot.size(), 1u);
  EXPECT_EQ(snapshot[0].name, "c_total");
  EXPECT_EQ(snapshot[0].type, MetricType::counter);
}

/// What the agent serves must read back as the families it served.
TEST(ExpositionText, ReadsBackWhatTheAgentServes) {
  auto snap = std::make_shared<Snapshot>();
  snap->families.push_back({"wattprobe_workload_cpu_seconds_total",
                            "On-CPU time.",
                            MetricType::counter,
                            {{{{"workload", "nginx.service"}, {"kind", "service"}}, 12.25},
                             {{{"workload", "we\"ird\\name\nx"}, {"kind", "container"}}, 0.5}}});
  snap->families.push_back(
      {"wattprobe_node_power_watts",
       "Mean power \\ over the last\ntick.",
       MetricType::gauge,
       {{{{"source", "rapl_powercap"}, {"domain", "package"}, {"socket", "0"}}, 42.125}}});
  Family tick("wattprobe_agent_tick_duration_seconds", "Tick time.", MetricType::histogram);
  tick.histogram = Histogram{{0.001, 0.01, 0.1}, {2, 9, 10}, 11, 0.75};
  snap->families.push_back(tick);

  const std::string text = render_prometheus_text(*snap);
  auto parsed = parse_exposition_text(text, kSource);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message() << "\n" << text;
  auto back = to_snapshot_families(std::move(*parsed));
  ASSERT_EQ(back.size(), snap->families.size()) << text;
  for (std::size_t i = 0; i < back.size(); ++i) {
    const Family& want = snap->families[i];
    EXPECT_EQ(back[i].name, want.name);
    EXPECT_EQ(back[i].help, want.help);
    EXPECT_EQ(back[i].type, want.type);
    ASSERT_EQ(back[i].series.size(), want.series.size());
    for (std::size_t j = 0; j < want.series.size(); ++j) {
      EXPECT_EQ(back[i].series[j].labels, want.series[j].labels);
      EXPECT_DOUBLE_EQ(back[i].series[j].value, want.series[j].value);
    }
    EXPECT_EQ(back[i].histogram.has_value(), want.histogram.has_value());
    if (want.histogram && back[i].histogram) {
      EXPECT_EQ(back[i].histogram->bounds, want.histogram->bounds);
      EXPECT_EQ(back[i].histogram->cumulative, want.histogram->cumulative);
      EXPECT_EQ(back[i].histogram->count, want.histogram->count);
      EXPECT_DOUBLE_EQ(back[i].histogram->sum, want.histogram->sum);
    }
  }
}

struct Malformed {
  std::string text;
  std::string expect;  // in the error's detail
};

class ExpositionTextRejects : public ::testing::TestWithParam<Malformed> {};

TEST_P(ExpositionTextRejects, NamingTheLineAndTheFault) {
  const Malformed& m = GetParam();
  auto r = parse_exposition_text(m.text, kSource);
  ASSERT_FALSE(r.ok()) << "accepted: " << m.text;
  EXPECT_EQ(r.error().kind, ErrorKind::malformed);
  EXPECT_EQ(r.error().path, kSource);
  EXPECT_NE(r.error().detail.find(m.expect), std::string::npos)
      << "detail: " << r.error().detail << "\nexpected to contain: " << m.expect;
}

INSTANTIATE_TEST_SUITE_P(
    Lines, ExpositionTextRejects,
    ::testing::Values(
        Malformed{"ok 1\nfoo{a=\"b} 1\n", "line 2, column 7: unterminated label value"},
        Malformed{"foo{a=b} 1\n", "line 1, column 7: expected a quoted value for label a"},
        Malformed{"foo{a=\"\\q\"} 1\n", "invalid escape in label value"},
        Malformed{"foo{a=\"1\",a=\"2\"} 1\n", "label a given twice"},
        Malformed{"foo{__name__=\"x\"} 1\n", "label name __name__ is reserved"},
        Malformed{"foo{1a=\"x\"} 1\n", "expected a label name or '}'"},
        Malformed{"foo{a=\"x\" b=\"y\"} 1\n", "expected ',' or '}' after a label"},
        Malformed{"9foo 1\n", "line 1, column 1: expected a metric name"},
        Malformed{"foo-bar 1\n", "invalid character in metric name"},
        Malformed{"foo\n", "expected a value"},
        Malformed{"foo 1x\n", "value \"1x\" is not a number"},
        Malformed{"foo 0x10\n", "value \"0x10\" is not a number"},
        Malformed{"foo 1e400\n", "value \"1e400\" is not a number"},
        Malformed{"foo 1 12.5\n", "timestamp \"12.5\" is not a whole number"},
        Malformed{"foo 1 2 3\n", "unexpected text after the timestamp"},
        Malformed{"foo 1", "line 1: the last line does not end with a newline"},
        Malformed{"# TYPE foo countr\nfoo 1\n", "unknown type \"countr\""},
        Malformed{"# TYPE foo gauge extra\n", "unexpected text after the type"},
        Malformed{"foo 1\n# TYPE foo counter\n",
                  "line 2, column 1: TYPE line for foo after its samples"},
        Malformed{"# TYPE foo gauge\n# TYPE foo gauge\n", "second TYPE line for foo"},
        Malformed{"# HELP foo a\n# HELP foo b\n", "second HELP line for foo"},
        Malformed{"# HELP foo bad \\t escape\n", "invalid escape in HELP text"},
        Malformed{"# HELP\n", "expected a metric name after HELP"},
        Malformed{"foo 1\nbar 1\nfoo 2\n",
                  "line 3, column 1: metric family foo appears in two groups"},
        Malformed{"foo{a=\"1\"} 1\nfoo{a=\"1\"} 2\n", "line 2, column 1: series foo given twice"},
        Malformed{"# TYPE h histogram\nh_bucket 1\n", "histogram bucket without an le label"},
        Malformed{"# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", "le label \"x\" is not a number"},
        Malformed{"# TYPE s summary\ns 1\n", "summary sample without a quantile label"}));

}  // namespace
}  // namespace wattprobe
