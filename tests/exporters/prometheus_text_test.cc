#include "exporters/prometheus_text.h"

#include <gtest/gtest.h>
#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "agent/base/exposition_text.h"
#include "exporters/prometheus_pull.h"
#include "tests/support/snapshot_collectable.h"

namespace wattprobe {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<ExpositionFamily> parse(const std::string& text, std::string_view what) {
  auto r = parse_exposition_text(text, what);
  EXPECT_TRUE(r.ok()) << what << ": " << (r.ok() ? "" : r.error().message()) << "\n" << text;
  return r.ok() ? *r : std::vector<ExpositionFamily>{};
}

std::string prometheus_cpp_text(const SnapshotPtr& snap) {
  return prometheus::TextSerializer().Serialize(
      testing::make_snapshot_collectable([snap] { return snap; })->Collect());
}

bool same_double(double a, double b) {
  return (std::isnan(a) && std::isnan(b)) ||
         std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

/// What a scraper reads back: a value per (line name, labels), in line order.
std::vector<double> values_in_order(const std::vector<ExpositionFamily>& families) {
  std::vector<double> out;
  for (const auto& f : families)
    for (const auto& s : f.samples) out.push_back(s.value);
  return out;
}

SnapshotPtr tricky_snapshot() {
  auto snap = std::make_shared<Snapshot>();
  snap->families.push_back({"wattprobe_workload_energy_joules_total",
                            "Energy attributed to the workload.",
                            MetricType::counter,
                            {{{{"workload", "back\\slash"}, {"kind", "service"}}, 12.25},
                             {{{"workload", "say \"hi\""}, {"kind", "container"}}, 0.1 + 0.2},
                             {{{"workload", "two\nlines"}, {"kind", "pod"}}, 1.0 / 3},
                             {{{"workload", "\\\"\n\\n"}, {"kind", ""}}, 123456789.123456789},
                             {{{"workload", "ünïcødé ✓"}, {"kind", "vm"}}, 1e15},
                             {{}, 0}}});
  snap->families.push_back({"wattprobe_node_power_watts",
                            "Mean power over the last tick.",
                            MetricType::gauge,
                            {{{{"v", "zero"}}, 0.0},
                             {{{"v", "negative zero"}}, -0.0},
                             {{{"v", "tiny"}}, 1e-9},
                             {{{"v", "denormal"}}, 5e-324},
                             {{{"v", "huge"}}, 1e308},
                             {{{"v", "negative"}}, -2.5},
                             {{{"v", "+inf"}}, kInf},
                             {{{"v", "-inf"}}, -kInf},
                             {{{"v", "nan"}}, kNaN},
                             {{{"v", "ten thousandth"}}, 0.0001},
                             {{{"v", "million"}}, 1e6}}});
  Family tick("wattprobe_agent_tick_duration_seconds", "Tick time.", MetricType::histogram);
  tick.histogram = Histogram{{0.0001, 0.005, 0.1, 1, 2.5, 1e6}, {0, 2, 9, 10, 10, 11}, 12, 0.75};
  snap->families.push_back(tick);
  // A histogram with nothing observed yet, a family with no series, one with no help.
  snap->families.push_back({"wattprobe_empty_histogram", "None yet.", MetricType::histogram});
  snap->families.push_back({"wattprobe_no_series", "Nothing to say.", MetricType::gauge});
  snap->families.push_back({"wattprobe_no_help", "", MetricType::gauge, {{{{"a", "b"}}, 7}}});
  return snap;
}

/// The same series, labels (`le` included, character for character) and values a scraper read
/// from prometheus-cpp's text, with values now exact where prometheus-cpp rounded to 16 digits.
TEST(PrometheusText, SameSeriesAsPrometheusCppTextSerializer) {
  SnapshotPtr snap = tricky_snapshot();
  const std::string ours = render_prometheus_text(*snap);
  const std::string theirs = prometheus_cpp_text(snap);
  auto mine = parse(ours, "render_prometheus_text");
  auto ref = parse(theirs, "prometheus-cpp");
  ASSERT_EQ(mine.size(), ref.size()) << ours << "\n---\n" << theirs;
  for (std::size_t i = 0; i < mine.size(); ++i) {
    SCOPED_TRACE(ref[i].name);
    EXPECT_EQ(mine[i].name, ref[i].name);
    EXPECT_EQ(mine[i].help, ref[i].help);
    EXPECT_EQ(mine[i].type, ref[i].type);
    ASSERT_EQ(mine[i].samples.size(), ref[i].samples.size());
    for (std::size_t j = 0; j < ref[i].samples.size(); ++j) {
      const auto& a = mine[i].samples[j];
      const auto& b = ref[i].samples[j];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.labels, b.labels);
      EXPECT_FALSE(a.timestamp_ms.has_value());
      if (std::isnan(b.value) || std::isinf(b.value)) {
        EXPECT_TRUE(same_double(a.value, b.value)) << a.value << " vs " << b.value;
      } else {
        EXPECT_NEAR(a.value, b.value, 1e-15 * std::abs(b.value)) << a.name;
      }
    }
  }
}

/// Each value reads back as the very double the snapshot held.
TEST(PrometheusText, ValuesReadBackExactly) {
  SnapshotPtr snap = tricky_snapshot();
  std::vector<double> want;
  for (const Family& f : snap->families) {
    for (const Series& s : f.series) want.push_back(s.value);
    if (f.histogram) {
      want.push_back(static_cast<double>(f.histogram->count));
      want.push_back(f.histogram->sum);
      for (uint64_t c : f.histogram->cumulative) want.push_back(static_cast<double>(c));
      want.push_back(static_cast<double>(f.histogram->count));
    }
  }
  const std::vector<double> got = values_in_order(parse(render_prometheus_text(*snap), "ours"));
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(same_double(got[i], want[i])) << i << ": " << got[i] << " vs " << want[i];

  // And any finite double, not only the chosen ones: the largest, which prometheus-cpp's 16
  // digits rounded up past it, to a text that reads as out of range.
  auto random = std::make_shared<Snapshot>();
  Family f("wattprobe_random", "Random bits.", MetricType::gauge);
  f.series.push_back({{{"i", "max"}}, std::numeric_limits<double>::max()});
  std::mt19937_64 bits(18);
  while (f.series.size() < 2000) {
    const double v = std::bit_cast<double>(bits());
    if (std::isfinite(v)) f.series.push_back({{{"i", std::to_string(f.series.size())}}, v});
  }
  random->families.push_back(f);
  const std::vector<double> back =
      values_in_order(parse(render_prometheus_text(*random), "random"));
  ASSERT_EQ(back.size(), f.series.size());
  for (std::size_t i = 0; i < back.size(); ++i)
    EXPECT_TRUE(same_double(back[i], f.series[i].value)) << f.series[i].value;
}

/// Where the two agree on a value's text, the whole exposition is byte for byte what
/// prometheus-cpp served: same lines, order, spacing and escapes.
TEST(PrometheusText, ByteForByteWherePrometheusCppWasExact) {
  auto snap = std::make_shared<Snapshot>();
  snap->families.push_back({"wattprobe_workload_cpu_seconds_total",
                            "On-CPU time.",
                            MetricType::counter,
                            {{{{"workload", "nginx.service"}, {"kind", "service"}}, 12.25},
                             {{{"workload", "we\"ird\\name\nx"}, {"kind", "container"}}, 0.5},
                             {{{"workload", "idle"}, {"kind", "idle"}}, 0}}});
  snap->families.push_back({"wattprobe_node_power_watts",
                            "Mean power over the last tick.",
                            MetricType::gauge,
                            {{{{"source", "rapl"}, {"domain", "package"}}, 42.125},
                             {{{"source", "rapl"}, {"domain", "dram"}}, kInf},
                             {{{"source", "rapl"}, {"domain", "gpu"}}, -kInf}}});
  Family tick("wattprobe_agent_tick_duration_seconds", "Tick time.", MetricType::histogram);
  tick.histogram = Histogram{{0.001, 0.01, 0.1, 1e6}, {2, 9, 10, 10}, 11, 0.75};
  snap->families.push_back(tick);
  snap->families.push_back({"wattprobe_no_help", "", MetricType::gauge, {{{}, 3}}});
  EXPECT_EQ(render_prometheus_text(*snap), prometheus_cpp_text(snap));
}

/// HELP text with a backslash or a newline stays one line, and reads back as written.
TEST(PrometheusText, EscapesHelpText) {
  Snapshot snap;
  snap.families.push_back(
      {"wattprobe_odd_help", "C:\\ path\nsecond line", MetricType::gauge, {{{}, 1}}});
  const std::string text = render_prometheus_text(snap);
  EXPECT_EQ(text,
            "# HELP wattprobe_odd_help C:\\\\ path\\nsecond line\n"
            "# TYPE wattprobe_odd_help gauge\n"
            "wattprobe_odd_help 1\n");
  auto back = parse(text, "help");
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].help, "C:\\ path\nsecond line");
}

TEST(PrometheusText, SpellsSpecialValuesAsPrometheusReadsThem) {
  Snapshot snap;
  snap.families.push_back({"g",
                           "",
                           MetricType::gauge,
                           {{{{"a", "1"}}, kNaN}, {{{"a", "2"}}, kInf}, {{{"a", "3"}}, -kInf}}});
  EXPECT_EQ(render_prometheus_text(snap),
            "# TYPE g gauge\ng{a=\"1\"} NaN\ng{a=\"2\"} +Inf\ng{a=\"3\"} -Inf\n");
}

TEST(PrometheusText, EmptySnapshotIsEmptyText) {
  EXPECT_EQ(render_prometheus_text(Snapshot{}), "");
}

}  // namespace
}  // namespace wattprobe
