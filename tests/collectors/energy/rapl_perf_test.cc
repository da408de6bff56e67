#include "collectors/energy/rapl_perf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <thread>
#include <tuple>

#include "agent/base/text_file.h"
#include "agent/tick/energy_meter.h"
#include "collectors/energy/counter_stall.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

constexpr std::string_view kPmu = "sys/bus/event_source/devices/power/";
constexpr double kScale = 2.3283064365386962890625e-10;  // 2^-32 J, as rapl.c prints it

void write_event(const testing::TempTree& tree, std::string_view event, std::string_view config) {
  std::string base = std::string(kPmu) + "events/" + std::string(event);
  tree.write(base, std::string(config) + "\n");
  tree.write(base + ".scale", "2.3283064365386962890625e-10\n");
  tree.write(base + ".unit", "Joules\n");
}

// A two-socket Intel server: the power PMU counts on CPU 0 (socket 0) and CPU 24 (socket 1).
void two_socket_intel(const testing::TempTree& tree) {
  tree.write(std::string(kPmu) + "type", "23\n");
  tree.write(std::string(kPmu) + "cpumask", "0,24\n");
  tree.write(std::string(kPmu) + "format/event", "config:0-7\n");
  write_event(tree, "energy-pkg", "event=0x02");
  write_event(tree, "energy-ram", "event=0x03");
  write_event(tree, "energy-cores", "event=0x01");
  tree.write("sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n");
  tree.write("sys/devices/system/cpu/cpu24/topology/physical_package_id", "1\n");
  tree.write("proc/sys/kernel/perf_event_paranoid", "2\n");
}

// Stands in for perf_event_open on a host that has no power PMU: counts per (type, config, cpu).
class FakePerfCounters : public PerfCounters {
 public:
  using Key = std::tuple<uint32_t, uint64_t, int>;
  std::map<Key, uint64_t> counts;
  std::map<Key, uint64_t> step;  // added to a count at each read: a counter that moves
  int open_errno = 0;            // every open fails with this when set
  std::map<Key, int> open_errno_for;
  int read_errno = 0;
  std::vector<Key> opened;
  int open_fds = 0;

  Result<int> open(uint32_t type, uint64_t config, int cpu, const std::string& what) override {
    Key key{type, config, cpu};
    if (open_errno) return error_from_errno(open_errno, what, "perf_event_open");
    if (auto it = open_errno_for.find(key); it != open_errno_for.end()) {
      return error_from_errno(it->second, what, "perf_event_open");
    }
    opened.push_back(key);
    ++open_fds;
    return static_cast<int>(opened.size() - 1);
  }
  Result<uint64_t> read(int fd, const std::string& what) override {
    if (read_errno) return error_from_errno(read_errno, what, "read");
    const Key& key = opened.at(static_cast<std::size_t>(fd));
    counts[key] += step[key];
    return counts[key];
  }
  void close(int) override { --open_fds; }
};

TEST(RaplPerf, DecodesEventConfigStrictly) {
  EXPECT_EQ(*parse_perf_event_config("event=0x02\n", "/e"), 2u);
  EXPECT_EQ(*parse_perf_event_config("event=0x05", "/e"), 5u);
  EXPECT_EQ(*parse_perf_event_config("event=0xff", "/e"), 255u);
  for (std::string_view bad : {"", "event=", "event=0x", "event=2", "event=0x100",
                               "event=0x02,umask=0x1", "config=0x2", "event=0xzz", "event=0x-1"}) {
    auto config = parse_perf_event_config(bad, "/power/events/energy-pkg");
    ASSERT_FALSE(config.ok()) << bad;
    EXPECT_EQ(config.error().kind, ErrorKind::malformed);
    EXPECT_NE(config.error().message().find("energy-pkg"), std::string::npos);
  }
}

TEST(RaplPerf, DecodesScaleAndUnit) {
  EXPECT_DOUBLE_EQ(*parse_perf_event_scale("2.3283064365386962890625e-10\n", "/s"), kScale);
  EXPECT_FALSE(parse_perf_event_scale("0", "/s").ok());
  EXPECT_FALSE(parse_perf_event_scale("-1e-10", "/s").ok());
  EXPECT_FALSE(parse_perf_event_scale("nan", "/s").ok());
  EXPECT_EQ(*parse_perf_event_unit("Joules\n", "/u"), "Joules");
  auto watts = parse_perf_event_unit("Watts\n", "/u");
  ASSERT_FALSE(watts.ok());
  EXPECT_EQ(watts.error().kind, ErrorKind::unsupported);
}

TEST(RaplPerf, ReadsPmuDescriptionWithDomains) {
  testing::TempTree tree;
  two_socket_intel(tree);
  std::vector<Error> skipped;
  auto pmu = read_rapl_perf_pmu(tree.paths(), skipped);
  ASSERT_TRUE(pmu.ok()) << pmu.error().message();
  EXPECT_TRUE(skipped.empty());
  EXPECT_EQ(pmu->type, 23u);
  EXPECT_EQ(pmu->cpus, (std::vector<int>{0, 24}));
  ASSERT_EQ(pmu->events.size(), 3u);  // in rapl.c order: pkg, cores, ram
  EXPECT_EQ(pmu->events[0].event, "energy-pkg");
  EXPECT_EQ(pmu->events[0].domain, "package");
  EXPECT_EQ(pmu->events[0].config, 2u);
  EXPECT_EQ(pmu->events[1].domain, "core");
  EXPECT_EQ(pmu->events[1].config, 1u);
  EXPECT_EQ(pmu->events[2].domain, "dram");
  EXPECT_EQ(pmu->events[2].config, 3u);
  EXPECT_DOUBLE_EQ(pmu->events[2].scale, kScale);
}

TEST(RaplPerf, MalformedEventIsSkippedOthersKept) {
  testing::TempTree tree;
  two_socket_intel(tree);
  tree.write(std::string(kPmu) + "events/energy-ram", "event=banana\n");
  std::vector<Error> skipped;
  auto pmu = read_rapl_perf_pmu(tree.paths(), skipped);
  ASSERT_TRUE(pmu.ok());
  EXPECT_EQ(pmu->events.size(), 2u);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_NE(skipped[0].message().find("energy-ram"), std::string::npos);
}

TEST(RaplPerf, OneCounterPerEventAndSocketWithKernelWidenedCounts) {
  testing::TempTree tree;
  two_socket_intel(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  FakePerfCounters& perf = *fake;
  // 2^32 counts of 2^-32 J = 1 J; the package-1 count is past 32 bits (no wrap, kernel-widened).
  perf.counts[{23, 2, 0}] = 1ull << 32;
  perf.counts[{23, 2, 24}] = 5ull << 32;
  perf.counts[{23, 3, 0}] = 7;
  RaplPerfSource source(tree.paths(), std::move(fake));
  EXPECT_EQ(source.name(), "rapl_perf");
  EXPECT_TRUE(source.measured());

  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_EQ(a.reason,
            "6 counters: energy-pkg (package) on CPU 0,24; energy-cores (core) on CPU 0,24; "
            "energy-ram (dram) on CPU 0,24");
  EXPECT_EQ(perf.opened.size(), 6u);

  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 6u);
  const Reading& pkg1 = s.readings[1];
  EXPECT_EQ(pkg1.domain, "package");
  EXPECT_EQ(pkg1.socket, 1);
  EXPECT_EQ(pkg1.key, "energy-pkg/cpu24");
  EXPECT_EQ(pkg1.kind, ReadingKind::energy_counter);
  EXPECT_EQ(pkg1.modulus, 0u);
  EXPECT_DOUBLE_EQ(pkg1.raw * pkg1.unit_joules, 5.0);
  EXPECT_DOUBLE_EQ(s.readings[0].raw * s.readings[0].unit_joules, 1.0);
  EXPECT_EQ(s.readings[4].domain, "dram");
  EXPECT_EQ(s.readings[4].socket, 0);
  EXPECT_EQ(s.readings[4].raw, 7u);
}

TEST(RaplPerf, ProbeAgainReopensWithoutLeaking) {
  testing::TempTree tree;
  two_socket_intel(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  FakePerfCounters& perf = *fake;
  {
    RaplPerfSource source(tree.paths(), std::move(fake));
    ASSERT_TRUE(source.probe().available);
    ASSERT_TRUE(source.probe().available);
    EXPECT_EQ(perf.open_fds, 6);
    EXPECT_EQ(source.sample().readings.size(), 6u);
  }
}

TEST(RaplPerf, NoPowerPmuExplainsWhy) {
  testing::TempTree tree;
  auto source = make_rapl_perf_source(tree.paths());
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("CONFIG_PERF_EVENTS_INTEL_RAPL"), std::string::npos) << a.reason;
  EXPECT_NE(a.reason.find("bus/event_source/devices/power"), std::string::npos) << a.reason;
  EXPECT_TRUE(source->sample().readings.empty());
}

TEST(RaplPerf, ParanoidKernelGivesPermissionReasonAndRemedy) {
  testing::TempTree tree;
  two_socket_intel(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  fake->open_errno = EACCES;
  RaplPerfSource source(tree.paths(), std::move(fake));
  Availability a = source.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("permission"), std::string::npos) << a.reason;
  EXPECT_NE(a.reason.find("energy-pkg cpu 0"), std::string::npos) << a.reason;
  EXPECT_NE(a.remedy.find("CAP_PERFMON"), std::string::npos) << a.remedy;
  EXPECT_NE(a.remedy.find("kernel.perf_event_paranoid=0 (now 2)"), std::string::npos) << a.remedy;
}

TEST(RaplPerf, EventTheCpuRefusesIsSkippedOthersKept) {
  testing::TempTree tree;
  two_socket_intel(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  fake->open_errno_for[{23, 3, 0}] = EOPNOTSUPP;
  fake->open_errno_for[{23, 3, 24}] = ENOENT;
  RaplPerfSource source(tree.paths(), std::move(fake));
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_NE(a.reason.find("skipped perf_event power/energy-ram cpu 0: unsupported"),
            std::string::npos)
      << a.reason;
  EXPECT_NE(a.reason.find("energy-ram cpu 24: absent"), std::string::npos) << a.reason;
  Sample s = source.sample();
  EXPECT_EQ(s.readings.size(), 4u);
  for (const Reading& r : s.readings) EXPECT_NE(r.domain, "dram");
}

TEST(RaplPerf, ReadFailureIsASampleErrorNotACrash) {
  testing::TempTree tree;
  two_socket_intel(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  FakePerfCounters& perf = *fake;
  RaplPerfSource source(tree.paths(), std::move(fake));
  ASSERT_TRUE(source.probe().available);
  perf.read_errno = EIO;
  Sample s = source.sample();
  EXPECT_TRUE(s.readings.empty());
  ASSERT_EQ(s.errors.size(), 6u);
  EXPECT_EQ(s.errors[0].path, "perf_event power/energy-pkg cpu 0");
}

TEST(RaplPerf, AmdHasOnlyPackage) {
  testing::TempTree tree;
  tree.write(std::string(kPmu) + "type", "13\n");
  tree.write(std::string(kPmu) + "cpumask", "0\n");
  write_event(tree, "energy-pkg", "event=0x02");
  tree.write("sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n");
  auto fake = std::make_unique<FakePerfCounters>();
  RaplPerfSource source(tree.paths(), std::move(fake));
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_EQ(a.reason, "1 counters: energy-pkg (package) on CPU 0");
}

// The H200 VM of issue 12: the kernel lists the power PMU with energy-psys, perf_event_open
// succeeds, and the count reads 0 forever because the hypervisor does not pass RAPL through.
void psys_only_vm(const testing::TempTree& tree) {
  tree.write(std::string(kPmu) + "type", "24\n");
  tree.write(std::string(kPmu) + "cpumask", "0\n");
  write_event(tree, "energy-psys", "event=0x05");
  tree.write("sys/devices/system/cpu/cpu0/topology/physical_package_id", "0\n");
}

TEST(RaplPerf, CounterThatReadsZeroIsStalledNotMeasured) {
  testing::TempTree tree;
  psys_only_vm(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  FakePerfCounters& perf = *fake;
  RaplPerfSource source(tree.paths(), std::move(fake));
  ASSERT_TRUE(source.probe().available);  // opening works: only reading tells

  auto checks = check_counters_advance({&source}, [] { return StallEvidence{0.2, 1.0}; });
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_TRUE(checks[0].all_stalled());
  EXPECT_EQ(checks[0].stalled_descriptions(),
            (std::vector<std::string>{"psys socket 0 (energy-psys/cpu0) stayed at 0"}));

  // The same PMU passed through: the count moves between the two reads.
  perf.step[{24, 5, 0}] = 1ull << 32;  // 1 J per read
  checks = check_counters_advance({&source}, [] { return StallEvidence{0.2, 1.0}; });
  EXPECT_FALSE(checks[0].all_stalled());
  EXPECT_TRUE(checks[0].stalled_descriptions().empty());
}

TEST(RaplPerf, CounterThatStopsMidRunIsStalledAndRecovers) {
  testing::TempTree tree;
  psys_only_vm(tree);
  auto fake = std::make_unique<FakePerfCounters>();
  FakePerfCounters& perf = *fake;
  const FakePerfCounters::Key psys{24, 5, 0};
  perf.step[psys] = 3ull << 32;  // 3 J per tick
  auto source = std::make_unique<RaplPerfSource>(tree.paths(), std::move(fake));
  ASSERT_TRUE(source->probe().available);
  std::vector<std::unique_ptr<EnergySource>> chosen;
  chosen.push_back(std::move(source));
  EnergyMeter meter(std::move(chosen), {}, {}, StallPolicy{3, 0, 0.5});
  meter.tick(1, 1.0);
  NodeEnergy e = meter.tick(1, 1.0);
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 3);

  perf.step[psys] = 0;  // the hypervisor stops updating it
  for (int i = 0; i < 4; ++i) meter.tick(1, 1.0);
  EXPECT_TRUE(meter.stalled("rapl_perf", "psys", 0));
  EXPECT_EQ(meter.stalls().at({"rapl_perf", "psys"}), 1u);
  e = meter.tick(1, 1.0);
  EXPECT_TRUE(e.domains.empty()) << "a stalled counter must not report 0 W as measured";

  perf.step[psys] = 2ull << 32;
  meter.tick(1, 1.0);  // moved again: recovered, this tick still left out
  EXPECT_FALSE(meter.stalled("rapl_perf", "psys", 0));
  e = meter.tick(1, 1.0);
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 2);
}

// This VM has no power PMU, but the kernel counter path (perf_event_open, 8-byte read, close) is
// the same for any counting PMU: exercise it on the software PMU's cpu-clock (config 0), whose
// count is nanoseconds and must grow while we sleep.
TEST(RaplPerf, KernelCountersOpenAndReadASystemWideCountingEvent) {
  auto type = read_u64(HostPaths{}.sys("bus/event_source/devices/software/type"));
  if (!type) GTEST_SKIP() << "no software PMU: " << type.error().message();
  auto perf = make_kernel_perf_counters();
  auto fd = perf->open(static_cast<uint32_t>(*type), /*PERF_COUNT_SW_CPU_CLOCK*/ 0, 0, "cpu-clock");
  if (!fd && fd.error().kind == ErrorKind::permission) {
    GTEST_SKIP() << "perf_event_open not permitted here: " << fd.error().message();
  }
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  auto first = perf->read(*fd, "cpu-clock");
  ASSERT_TRUE(first.ok()) << first.error().message();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto second = perf->read(*fd, "cpu-clock");
  ASSERT_TRUE(second.ok()) << second.error().message();
  // cpu-clock counts wall nanoseconds on CPU 0 whatever runs there.
  EXPECT_GE(*second - *first, 40'000'000u);
  perf->close(*fd);
}

TEST(RaplPerf, KernelRefusesAnUnknownPmuTypeAsAbsent) {
  auto perf = make_kernel_perf_counters();
  auto fd = perf->open(0x7fff0000, 2, 0, "perf_event nosuch/energy-pkg cpu 0");
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().kind, ErrorKind::absent) << fd.error().message();
  EXPECT_EQ(fd.error().path, "perf_event nosuch/energy-pkg cpu 0");
}

TEST(RaplPerf, LiveKernelPowerPmu) {
  HostPaths host;
  if (!std::filesystem::exists(rapl_perf_pmu_dir(host))) {
    GTEST_SKIP() << "no " << rapl_perf_pmu_dir(host)
                 << " on this host (no RAPL PMU: VM or kernel without "
                    "CONFIG_PERF_EVENTS_INTEL_RAPL)";
  }
  auto source = make_rapl_perf_source(host);
  Availability a = source->probe();
  if (!a.available) GTEST_SKIP() << "power PMU present but unusable: " << a.reason;
  Sample first = source->sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Sample second = source->sample();
  ASSERT_EQ(first.readings.size(), second.readings.size());
  for (std::size_t i = 0; i < first.readings.size(); ++i) {
    double joules =
        (second.readings[i].raw - first.readings[i].raw) * second.readings[i].unit_joules;
    double watts = joules / 0.2;
    EXPECT_GE(watts, 0) << second.readings[i].key;
    EXPECT_LT(watts, 2000) << second.readings[i].key;
  }
}

}  // namespace
}  // namespace wattprobe
