#include "agent/cli/top_frame.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>

namespace wattprobe {
namespace {

/// A workload as the agent exports it: watts by domain, and its two counters.
struct Load {
  std::string name;
  std::string kind = "service";
  double package_watts = 0;
  double dram_watts = 0;
  double core_watts = 0;  // core lies inside package: never added
  double cpu_seconds = 0;
  double co2e_grams = 0;
};

Labels workload_labels(const Load& l) {
  return {
      {"workload", l.name}, {"kind", l.kind}, {"namespace", ""}, {"pod", ""}, {"container", ""}};
}

/// A snapshot of a host with rapl_powercap package (two sockets), dram and core, or with the
/// model estimate's package only.
Snapshot snapshot(int64_t ms, const std::vector<Load>& loads, bool estimate = false,
                  uint64_t ticks = 1) {
  Snapshot s;
  s.timestamp_ms = ms;
  std::string source = estimate ? "model" : "rapl_powercap";
  std::string measured = estimate ? "false" : "true";
  Family node("wattprobe_node_power_watts", "", MetricType::gauge);
  Family info("wattprobe_energy_source_info", "", MetricType::gauge);
  node.series.push_back({{{"source", source}, {"domain", "package"}, {"socket", "0"}}, 30});
  info.series.push_back({{{"source", source}, {"domain", "package"}, {"measured", measured}}, 1});
  if (!estimate) {
    node.series.push_back({{{"source", source}, {"domain", "package"}, {"socket", "1"}}, 10});
    node.series.push_back({{{"source", source}, {"domain", "core"}, {"socket", "0"}}, 20});
    node.series.push_back({{{"source", source}, {"domain", "dram"}, {"socket", "0"}}, 5});
    info.series.push_back({{{"source", source}, {"domain", "dram"}, {"measured", "true"}}, 1});
    info.series.push_back({{{"source", source}, {"domain", "core"}, {"measured", "true"}}, 1});
  }
  Family power("wattprobe_workload_power_watts", "", MetricType::gauge);
  Family cpu("wattprobe_workload_cpu_seconds_total", "", MetricType::counter);
  Family co2e("wattprobe_workload_operational_co2e_grams_total", "", MetricType::counter);
  for (const Load& l : loads) {
    for (auto [domain, w] : {std::pair<std::string, double>{"package", l.package_watts},
                             {"dram", l.dram_watts},
                             {"core", l.core_watts}}) {
      if (estimate && domain != "package") continue;
      Labels labels = workload_labels(l);
      labels.emplace_back("domain", domain);
      labels.emplace_back("source", source);
      labels.emplace_back("measured", measured);
      power.series.push_back({labels, w});
    }
    cpu.series.push_back({workload_labels(l), l.cpu_seconds});
    co2e.series.push_back({workload_labels(l), l.co2e_grams});
  }
  Family tick("wattprobe_agent_tick_duration_seconds", "", MetricType::histogram);
  tick.histogram = Histogram{{0.1}, {ticks}, ticks, 0.01 * static_cast<double>(ticks)};
  s.families = {node, info, power, cpu, co2e, tick};
  s.families.push_back(
      {"wattprobe_node_idle_power_watts",
       "",
       MetricType::gauge,
       {{{{"source", source}, {"domain", "package"}, {"socket", "0"}, {"method", "override"}},
         8}}});
  s.families.push_back({"wattprobe_grid_carbon_intensity_grams_per_kwh",
                        "",
                        MetricType::gauge,
                        {{{{"zone", ""}, {"provider", "static"}, {"signal", "average"}}, 475}}});
  s.families.push_back(
      {"wattprobe_agent_accounting_mode", "", MetricType::gauge, {{{{"mode", "bpf"}}, 1}}});
  return s;
}

const TopWorkload& find(const TopFrame& f, const std::string& name) {
  auto it = std::find_if(f.workloads.begin(), f.workloads.end(),
                         [&](const TopWorkload& w) { return w.name == name; });
  EXPECT_NE(it, f.workloads.end()) << name;
  return *it;
}

std::vector<std::string> names(const TopFrame& f) {
  std::vector<std::string> out;
  for (const auto& w : f.workloads) out.push_back(w.name);
  return out;
}

/// The text a terminal shows: SGR sequences take no columns.
std::string visible(const std::string& line) {
  std::string out;
  for (std::size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {
      i = line.find('m', i);
      if (i == std::string::npos) break;
      continue;
    }
    out += line[i];
  }
  return out;
}

std::string header_of(const std::vector<std::string>& lines) {
  for (const auto& l : lines) {
    if (l.find("WORKLOAD") != std::string::npos) return l;
  }
  return {};
}

TEST(TopFrame, HostPowerAddsTheDomainsThatDoNotOverlap) {
  Snapshot now = snapshot(10'000, {});
  TopFrame f = build_top_frame(nullptr, now, {"test", TopSort::watts, 4});
  // package (both sockets) + dram; core is inside package.
  EXPECT_DOUBLE_EQ(f.host_watts, 30 + 10 + 5);
  EXPECT_EQ(f.host_domains, (std::vector<std::string>{"package", "dram"}));
  EXPECT_TRUE(f.host_measured);
  ASSERT_EQ(f.domains.size(), 3u);
  // The domains the total adds first; the agent lists core before dram.
  EXPECT_EQ(f.domains[0].domain, "package");
  EXPECT_DOUBLE_EQ(f.domains[0].watts, 40);
  EXPECT_EQ(f.domains[1].domain, "dram");
  EXPECT_EQ(f.domains[2].domain, "core");
  EXPECT_FALSE(f.domains[2].in_host_sum);
  EXPECT_EQ(f.idle_watts, 8);

  // An idle estimate not found yet is unknown, not 0 W.
  for (Family& family : now.families) {
    if (family.name != "wattprobe_node_idle_power_watts") continue;
    for (Series& s : family.series) {
      Labels l = s.labels;
      l.back().second = "none";
      s.labels = std::move(l);
    }
  }
  EXPECT_FALSE(build_top_frame(nullptr, now, {"test", TopSort::watts, 4}).idle_watts);
  EXPECT_EQ(f.grid_grams_per_kwh, 475);
  EXPECT_EQ(f.accounting_mode, "bpf");
}

TEST(TopFrame, HostAndWorkloadWattsAreTheAgentsHostFigure) {
  // A BMC beside RAPL whose wall read below the components this tick: the agent's E_host is the
  // components' 45 W, not the meter's 30 W, and each workload's host share is the agent's own.
  Load web{"web.service", "service", 6, 1.5, 4, 0, 0};
  Snapshot snap = snapshot(10'000, {web});
  for (Family& family : snap.families) {
    if (family.name == "wattprobe_node_power_watts") {
      family.series.push_back(
          {{{"source", "redfish"}, {"domain", "platform"}, {"socket", ""}}, 30});
    } else if (family.name == "wattprobe_energy_source_info") {
      family.series.push_back(
          {{{"source", "redfish"}, {"domain", "platform"}, {"measured", "true"}}, 1});
    } else if (family.name == "wattprobe_workload_power_watts") {
      family.series.push_back({{{"workload", web.name},
                                {"kind", web.kind},
                                {"namespace", ""},
                                {"pod", ""},
                                {"container", ""},
                                {"domain", "platform"},
                                {"source", "redfish"},
                                {"measured", "true"}},
                               7.5});
    } else if (family.name == "wattprobe_node_idle_power_watts") {
      // The wall's own idle is its rest's; the host's idle holds the components' (8 W) too.
      family.series.push_back(
          {{{"source", "redfish"}, {"domain", "platform"}, {"socket", ""}, {"method", "override"}},
           12});
    }
  }
  snap.families.push_back({"wattprobe_node_host_power_watts",
                           "",
                           MetricType::gauge,
                           {{{{"basis", "platform"}, {"measured", "true"}}, 45}}});
  snap.families.push_back(
      {"wattprobe_workload_host_power_watts", "", MetricType::gauge, {{workload_labels(web), 9}}});
  TopFrame f = build_top_frame(nullptr, snap, {"test", TopSort::watts, 4});
  EXPECT_DOUBLE_EQ(f.host_watts, 45);
  EXPECT_EQ(f.host_domains, (std::vector<std::string>{"platform"}));
  EXPECT_EQ(f.idle_watts, 8 + 12);
  EXPECT_DOUBLE_EQ(find(f, "web.service").watts, 9);
  EXPECT_TRUE(find(f, "web.service").measured);

  // The host figure from an estimate is marked as one.
  for (Family& family : snap.families) {
    if (family.name == "wattprobe_node_host_power_watts")
      family.series = {{{{"basis", "platform"}, {"measured", "false"}}, 45}};
  }
  f = build_top_frame(nullptr, snap, {"test", TopSort::watts, 4});
  EXPECT_FALSE(f.host_measured);
  EXPECT_FALSE(find(f, "web.service").measured);
}

TEST(TopFrame, WorkloadWattsAddPackageAndDramButNotCore) {
  Load web{"web.service", "service", 6, 1.5, 4, 0, 0};
  TopFrame f = build_top_frame(nullptr, snapshot(10'000, {web}), {"test", TopSort::watts, 4});
  EXPECT_DOUBLE_EQ(find(f, "web.service").watts, web.package_watts + web.dram_watts);
  EXPECT_TRUE(find(f, "web.service").measured);
}

TEST(TopFrame, RatesComeFromTheCountersBetweenTwoSnapshots) {
  Load before{"web.service", "service", 5, 0, 0, 100, 2};
  Load after = before;
  after.cpu_seconds += 3;     // 3 CPU seconds in 2 s on 4 CPUs: 37.5 % of the host
  after.co2e_grams += 0.004;  // grams in 2 s
  const unsigned cpus = 4;
  const double seconds = 2;
  Snapshot s0 = snapshot(10'000, {before});
  Snapshot s1 = snapshot(10'000 + 2'000, {after}, false, 2);
  TopFrame f = build_top_frame(&s0, s1, {"test", TopSort::watts, cpus});
  EXPECT_DOUBLE_EQ(f.seconds, seconds);
  const TopWorkload& w = find(f, "web.service");
  ASSERT_TRUE(w.cpu_share);
  EXPECT_DOUBLE_EQ(*w.cpu_share, 3 / seconds / cpus);
  ASSERT_TRUE(w.co2e_grams_per_hour);
  EXPECT_NEAR(*w.co2e_grams_per_hour, 0.004 / seconds * 3600, 1e-9);

  // Units on screen: the share in percent, the CO2e rate in grams per hour.
  auto lines = render_top_frame(f, 80, 24, false);
  auto row = std::find_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.starts_with("web.service"); });
  ASSERT_NE(row, lines.end());
  EXPECT_NE(row->find(" 37.5 "), std::string::npos) << *row;
  EXPECT_NE(row->find(" 7.20 "), std::string::npos) << *row;
  EXPECT_NE(row->find(" 5.00 "), std::string::npos) << *row;
  std::string header = header_of(lines);
  EXPECT_NE(header.find("WATTS"), std::string::npos);
  EXPECT_NE(header.find("CO2E G/H"), std::string::npos);
  EXPECT_NE(header.find("CPU %"), std::string::npos);
}

TEST(TopFrame, NoRateWithoutAPreviousValueOrAcrossACounterReset) {
  Load old_one{"old.service", "service", 1, 0, 0, 50, 5};
  Load restarted = old_one;
  restarted.cpu_seconds = 1;  // the agent restarted without its checkpoint
  restarted.co2e_grams = 0.1;
  Load fresh{"new.service", "service", 2, 0, 0, 1, 0.1};
  Snapshot s0 = snapshot(10'000, {old_one});
  Snapshot s1 = snapshot(11'000, {restarted, fresh}, false, 2);
  TopFrame f = build_top_frame(&s0, s1, {"test", TopSort::cpu, 4});
  EXPECT_FALSE(find(f, "old.service").cpu_share);
  EXPECT_FALSE(find(f, "old.service").co2e_grams_per_hour);
  EXPECT_FALSE(find(f, "new.service").cpu_share);
  auto lines = render_top_frame(f, 80, 24, false);
  auto row = std::find_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.starts_with("new.service"); });
  ASSERT_NE(row, lines.end());
  EXPECT_NE(row->find(" - "), std::string::npos) << *row;
}

TEST(TopFrame, SortsByEachKeyAndMarksTheSortedColumn) {
  // Each workload leads by a different figure.
  std::vector<Load> before{{"a-watts.service", "service", 9, 0, 0, 0, 0},
                           {"b-cpu.service", "service", 1, 0, 0, 0, 0},
                           {"c-co2e.service", "service", 2, 0, 0, 0, 0}};
  std::vector<Load> after = before;
  after[0].cpu_seconds = 0.1;
  after[0].co2e_grams = 0.001;
  after[1].cpu_seconds = 2;
  after[1].co2e_grams = 0.002;
  after[2].cpu_seconds = 1;
  after[2].co2e_grams = 0.01;
  Snapshot s0 = snapshot(10'000, before);
  Snapshot s1 = snapshot(11'000, after, false, 2);
  struct Case {
    char key;
    std::vector<std::string> order;
    std::string marked;
  };
  for (const Case& c :
       {Case{'w', {"a-watts.service", "c-co2e.service", "b-cpu.service"}, "*WATTS"},
        Case{'c', {"b-cpu.service", "c-co2e.service", "a-watts.service"}, "*CPU %"},
        Case{'g', {"c-co2e.service", "b-cpu.service", "a-watts.service"}, "*CO2E G/H"},
        Case{'n', {"a-watts.service", "b-cpu.service", "c-co2e.service"}, "*WORKLOAD"}}) {
    auto sort = top_sort_for_key(c.key);
    ASSERT_TRUE(sort) << c.key;
    TopFrame f = build_top_frame(&s0, s1, {"test", *sort, 4});
    EXPECT_EQ(names(f), c.order) << "key " << c.key;
    std::string header = header_of(render_top_frame(f, 80, 24, false));
    EXPECT_NE(header.find(c.marked), std::string::npos) << header;
    EXPECT_EQ(std::count(header.begin(), header.end(), '*'), 1) << header;
    EXPECT_EQ(parse_top_sort(to_string(*sort)), sort);
  }
  EXPECT_FALSE(top_sort_for_key('x'));
  EXPECT_FALSE(parse_top_sort("joules"));
}

TEST(TopFrame, AnEstimateIsMarkedAsOne) {
  Load guess{"guess.service", "service", 3, 0, 0, 0, 0};
  TopFrame f =
      build_top_frame(nullptr, snapshot(10'000, {guess}, true), {"test", TopSort::watts, 4});
  EXPECT_FALSE(f.host_measured);
  EXPECT_FALSE(find(f, "guess.service").measured);
  auto lines = render_top_frame(f, 80, 24, false);
  EXPECT_NE(lines[1].find("ESTIMATE"), std::string::npos) << lines[1];
  auto row = std::find_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.starts_with("guess.service"); });
  ASSERT_NE(row, lines.end());
  EXPECT_TRUE(row->ends_with("EST")) << *row;

  TopFrame measured =
      build_top_frame(nullptr, snapshot(10'000, {guess}), {"test", TopSort::watts, 4});
  auto mlines = render_top_frame(measured, 80, 24, false);
  row = std::find_if(mlines.begin(), mlines.end(),
                     [](const std::string& l) { return l.starts_with("guess.service"); });
  ASSERT_NE(row, mlines.end());
  EXPECT_TRUE(row->ends_with("meas")) << *row;
}

TEST(TopFrame, FillsAn80By24TerminalWithTheHeaviestWorkloads) {
  std::vector<Load> loads;
  for (int i = 0; i < 100; ++i) {
    loads.push_back(
        {"workload-with-a-rather-long-systemd-unit-name-" + std::to_string(i) + ".service",
         "service", 0.1 * i, 0, 0, 0, 0});
  }
  TopFrame f = build_top_frame(nullptr, snapshot(10'000, loads), {"test", TopSort::watts, 4});
  auto lines = render_top_frame(f, 80, 24, true);
  ASSERT_EQ(lines.size(), 24u);
  for (const auto& l : lines) EXPECT_LE(visible(l).size(), 80u) << visible(l);
  std::vector<std::string> rows;
  for (const auto& l : lines) {
    if (visible(l).starts_with("workload-with")) rows.push_back(visible(l));
  }
  // Every line not taken by the title, host, domains, header and footer holds a workload.
  ASSERT_GE(rows.size(), 16u);
  EXPECT_TRUE(rows[0].starts_with("workload-with-a-rather-long-systemd-un~")) << rows[0];
  EXPECT_NE(rows[0].find(" 9.90 "), std::string::npos) << rows[0];  // the heaviest first
  std::string footer = visible(lines.back());
  EXPECT_NE(footer.find(std::to_string(rows.size()) + " of 100 workloads"), std::string::npos)
      << footer;
  EXPECT_NE(footer.find("q quit"), std::string::npos);
}

/// Adds an nvml GPU (two devices) to a snapshot, with each named workload's GPU watts.
void add_gpus(Snapshot& s, const std::vector<std::pair<std::string, double>>& gpu_watts) {
  for (Family& f : s.families) {
    if (f.name == "wattprobe_node_power_watts") {
      f.series.push_back({{{"source", "nvml"}, {"domain", "gpu"}, {"socket", "0"}}, 400});
      f.series.push_back({{{"source", "nvml"}, {"domain", "gpu"}, {"socket", "1"}}, 120});
    } else if (f.name == "wattprobe_energy_source_info") {
      f.series.push_back({{{"source", "nvml"}, {"domain", "gpu"}, {"measured", "true"}}, 1});
    } else if (f.name == "wattprobe_workload_power_watts") {
      for (const auto& [name, w] : gpu_watts) {
        // Attribution sums a source's devices into one series; two sources are two series,
        // and the column adds them.
        for (auto [source, part] :
             {std::pair<std::string, double>{"nvml", w * 0.75}, {"hwmon", w * 0.25}}) {
          Labels labels = workload_labels(Load{name});
          labels.emplace_back("domain", "gpu");
          labels.emplace_back("source", source);
          labels.emplace_back("measured", "true");
          f.series.push_back({labels, part});
        }
      }
    }
  }
}

TEST(TopFrame, GpuWattsPerWorkloadInTheirOwnColumnWithin80Columns) {
  std::vector<Load> loads{{"trainer-with-a-long-name-that-needs-cutting.service", "service", 20, 2},
                          {"nginx.service", "service", 6, 1},
                          {"gpu-only.service", "service", 0, 0}};
  Snapshot snap = snapshot(10'000, loads);
  add_gpus(snap, {{"trainer-with-a-long-name-that-needs-cutting.service", 310.5},
                  {"gpu-only.service", 88.25}});
  TopFrame f = build_top_frame(nullptr, snap, {"test", TopSort::watts, 4});
  EXPECT_TRUE(f.has_gpu);
  EXPECT_DOUBLE_EQ(*find(f, "trainer-with-a-long-name-that-needs-cutting.service").gpu_watts,
                   310.5);
  EXPECT_DOUBLE_EQ(find(f, "trainer-with-a-long-name-that-needs-cutting.service").watts,
                   20 + 2 + 310.5)
      << "the host total adds the gpu domain, so the workload's watts hold its GPU's";
  EXPECT_DOUBLE_EQ(*find(f, "gpu-only.service").gpu_watts, 88.25);
  EXPECT_FALSE(find(f, "nginx.service").gpu_watts) << "no GPU used: no figure, not 0";
  EXPECT_NE(f.host_domains.end(), std::find(f.host_domains.begin(), f.host_domains.end(), "gpu"));

  auto lines = render_top_frame(f, 80, 24, false);
  for (const auto& l : lines) EXPECT_LE(l.size(), 80u) << l;
  std::string header = header_of(lines);
  ASSERT_NE(header.find("GPU W"), std::string::npos) << header;
  // The figure sits under its header, right-aligned like the other figures.
  const std::size_t gpu_end = header.find("GPU W") + 5;
  std::map<std::string, std::string> cell;
  for (const auto& l : lines) {
    for (std::string name : {"trainer-with", "nginx.service", "gpu-only.service"}) {
      if (l.starts_with(name) && l.size() >= gpu_end) {
        std::size_t start = l.rfind(' ', gpu_end - 1) + 1;
        cell[name] = l.substr(start, gpu_end - start);
      }
    }
  }
  EXPECT_EQ(cell["trainer-with"], "310.50");
  EXPECT_EQ(cell["gpu-only.service"], "88.25");
  EXPECT_EQ(cell["nginx.service"], "-");

  // A host without GPUs keeps the width for the names.
  TopFrame cpu_only =
      build_top_frame(nullptr, snapshot(10'000, loads), {"test", TopSort::watts, 4});
  EXPECT_FALSE(cpu_only.has_gpu);
  EXPECT_EQ(header_of(render_top_frame(cpu_only, 80, 24, false)).find("GPU W"), std::string::npos);
}

TEST(TopFrame, NeverOverflowsAnyTerminalSize) {
  std::vector<Load> loads{{"a.service", "service", 1, 1, 1, 1, 1}, {"b", "kernel", 2, 0, 0, 2, 2}};
  Snapshot s0 = snapshot(10'000, loads);
  Snapshot s1 = snapshot(11'000, loads, false, 2);
  TopFrame f = build_top_frame(&s0, s1, {"http://127.0.0.1:9887/metrics", TopSort::watts, 4});
  f.status = "a long status line that has to wrap over more than one line of a narrow terminal";
  for (int width = 1; width <= 120; width += 7) {
    for (int height = 1; height <= 30; ++height) {
      auto lines = render_top_frame(f, width, height, true);
      ASSERT_LE(lines.size(), static_cast<std::size_t>(height)) << width << "x" << height;
      for (const auto& l : lines) {
        ASSERT_LE(visible(l).size(), static_cast<std::size_t>(width)) << width << "x" << height;
      }
    }
  }
}

TEST(TopFrame, LabelTextCannotDriveTheTerminal) {
  Load evil{"evil\x1b[2J\x1b]0;owned\x07\xc3\xa9", "service", 5, 0, 0, 0, 0};
  TopFrame f = build_top_frame(nullptr, snapshot(10'000, {evil}), {"test", TopSort::watts, 4});
  for (const auto& l : render_top_frame(f, 80, 24, false)) {
    for (char c : l) {
      auto u = static_cast<unsigned char>(c);
      ASSERT_TRUE(u >= 0x20 && u < 0x7f) << "byte " << int(u) << " in " << l;
    }
  }
}

TEST(TopFrame, WithoutDataItShowsWhy) {
  TopFrameInput in{"http://127.0.0.1:9/metrics", TopSort::watts, 4};
  TopFrame f = empty_top_frame(in, "cannot read http://127.0.0.1:9/metrics: connection refused");
  auto lines = render_top_frame(f, 40, 24, false);
  std::string all;
  for (const auto& l : lines) all += (all.empty() ? "" : " ") + l;
  EXPECT_NE(all.find("connection refused"), std::string::npos) << all;
  EXPECT_NE(lines[0].find("wattprobe top"), std::string::npos);
}

TEST(TopFrame, TickCountComesFromTheTickHistogram) {
  EXPECT_EQ(snapshot_tick_count(snapshot(0, {}, false, 42)), 42u);
  EXPECT_FALSE(snapshot_tick_count(Snapshot{}));
}

}  // namespace
}  // namespace wattprobe
