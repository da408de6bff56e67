#include "collectors/energy/rapl_powercap.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::kEpycMaxEnergyRangeUj;
using testing::kIntelMaxEnergyRangeUj;
using testing::powercap_file;
using testing::PowercapDriver;
using testing::SysfsWriter;
using testing::TempTree;

const Reading* find(const Sample& s, std::string_view key) {
  for (const auto& r : s.readings)
    if (r.key == key) return &r;
  return nullptr;
}

const Error* find_error(const Sample& s, std::string_view file_suffix) {
  for (const auto& e : s.errors)
    if (e.path.ends_with(file_suffix)) return &e;
  return nullptr;
}

// What the agent's EnergyMeter does with two readings: (max − prev) + cur on a wrap.
uint64_t delta(uint64_t prev, uint64_t cur, uint64_t modulus) {
  return cur >= prev ? cur - prev : (modulus - prev) + cur;
}

TEST(RaplPowercap, OneSocketReadsPackageCoreUncoreAsKernelPrintsThem) {
  TempTree tree;
  auto scenario = testing::one_socket();
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  EXPECT_EQ(source.name(), "rapl_powercap");

  Availability a = source.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_THAT(a.reason, HasSubstr("3 zones: package-0 (intel-rapl:0), core (intel-rapl:0:0), "
                                  "uncore (intel-rapl:0:1)"));
  EXPECT_TRUE(a.remedy.empty());

  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  ASSERT_EQ(s.readings.size(), 3u);
  const Reading* pkg = find(s, "intel-rapl:0");
  ASSERT_NE(pkg, nullptr);
  EXPECT_EQ(pkg->domain, "package");
  EXPECT_EQ(pkg->socket, 0);
  EXPECT_EQ(pkg->kind, ReadingKind::energy_counter);
  EXPECT_EQ(pkg->raw, 81234567890u);
  EXPECT_EQ(pkg->modulus, kIntelMaxEnergyRangeUj);
  EXPECT_DOUBLE_EQ(pkg->unit_joules, 1e-6);
  const Reading* core = find(s, "intel-rapl:0:0");
  ASSERT_NE(core, nullptr);
  EXPECT_EQ(core->domain, "core");
  EXPECT_EQ(core->socket, 0);
  EXPECT_EQ(core->raw, 41234567u);
  EXPECT_EQ(find(s, "intel-rapl:0:1")->domain, "uncore");
}

TEST(RaplPowercap, IgnoresTheIntelRaplMmioDuplicate) {
  TempTree tree;
  auto scenario = testing::one_socket();
  ASSERT_TRUE(scenario.with_mmio_duplicate);
  testing::write_powercap(SysfsWriter(tree), scenario);
  ASSERT_TRUE(std::filesystem::exists(tree.path(powercap_file("intel-rapl-mmio:0", "energy_uj"))));

  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  EXPECT_THAT(a.reason, HasSubstr("ignored intel-rapl-mmio"));
  Sample s = source.sample();
  int packages = 0;
  for (const auto& r : s.readings) {
    EXPECT_EQ(r.key.find("mmio"), std::string::npos) << r.key;
    packages += r.domain == "package";
  }
  EXPECT_EQ(packages, 1);
}

TEST(RaplPowercap, TwoSocketsWithDramGiveEachSubzoneItsParentsSocket) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::two_socket_with_dram());
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 4u);
  struct Want {
    const char* key;
    const char* domain;
    int socket;
    uint64_t raw;
  };
  for (Want w :
       {Want{"intel-rapl:0", "package", 0, 200000000000},
        Want{"intel-rapl:0:0", "dram", 0, 7000000}, Want{"intel-rapl:1", "package", 1, 12345678901},
        Want{"intel-rapl:1:0", "dram", 1, 8000000}}) {
    const Reading* r = find(s, w.key);
    ASSERT_NE(r, nullptr) << w.key;
    EXPECT_EQ(r->domain, w.domain) << w.key;
    EXPECT_EQ(r->socket, w.socket) << w.key;
    EXPECT_EQ(r->raw, w.raw) << w.key;
  }
}

TEST(RaplPowercap, AmdZenHasPackageAndCoreWithEpycRange) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::amd_zen());
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 2u);
  EXPECT_EQ(find(s, "intel-rapl:0")->domain, "package");
  EXPECT_EQ(find(s, "intel-rapl:0")->modulus, kEpycMaxEnergyRangeUj);
  EXPECT_EQ(find(s, "intel-rapl:0:0")->domain, "core");
  EXPECT_EQ(find(s, "intel-rapl:0:0")->socket, 0);
  EXPECT_EQ(find(s, "intel-rapl:0:0")->modulus, kEpycMaxEnergyRangeUj);
}

TEST(RaplPowercap, PsysAtTopLevelHasNoSocket) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::psys_platform());
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  const Reading* psys = find(s, "intel-rapl:1");
  ASSERT_NE(psys, nullptr);
  EXPECT_EQ(psys->domain, "psys");
  EXPECT_EQ(psys->socket, -1);
  EXPECT_EQ(psys->raw, 99000000000u);
}

TEST(RaplPowercap, DisabledZoneIsStillReadAndProbeSaysSo) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::disabled_zone());
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("intel-rapl:0:0 (core) disabled, read anyway"));
  Sample s = source.sample();
  ASSERT_NE(find(s, "intel-rapl:0:0"), nullptr);
  EXPECT_EQ(find(s, "intel-rapl:0:0")->raw, 41234567u);
}

TEST(RaplPowercap, DisabledZoneWithUnreadableEnergyIsLeftOut) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::disabled_zone());
  tree.remove(powercap_file("intel-rapl:0:0", "energy_uj"));
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("skipped intel-rapl:0:0: disabled and"));
  Sample s = source.sample();
  EXPECT_EQ(s.readings.size(), 2u);
  EXPECT_TRUE(s.errors.empty());
}

TEST(RaplPowercap, DisabledControlTypeIsNotedAndCountersStillRead) {
  TempTree tree;
  auto scenario = testing::two_socket_with_dram();
  scenario.control_type_enabled = false;
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  ASSERT_TRUE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("control type intel-rapl disabled"));
  EXPECT_EQ(source.sample().readings.size(), 4u);
}

TEST(RaplPowercap, ZoneIdsAreHex) {
  TempTree tree;
  auto scenario = testing::one_socket();
  scenario.zones.push_back({"intel-rapl:0:a", "dram", 555, kIntelMaxEnergyRangeUj, true});
  scenario.zones.push_back({"intel-rapl:0:2", "dram", 222, kIntelMaxEnergyRangeUj, true});
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  std::vector<std::string> keys;
  for (const auto& z : source.zones()) keys.push_back(z.key);
  // Numeric order of the hex ids: 0:2 (2) before 0:a (10).
  EXPECT_THAT(keys, ::testing::ElementsAre("intel-rapl:0", "intel-rapl:0:0", "intel-rapl:0:1",
                                           "intel-rapl:0:2", "intel-rapl:0:a"));
  Sample s = source.sample();
  ASSERT_NE(find(s, "intel-rapl:0:a"), nullptr);
  EXPECT_EQ(find(s, "intel-rapl:0:a")->raw, 555u);
  EXPECT_EQ(find(s, "intel-rapl:0:a")->socket, 0);
}

TEST(RaplPowercap, MultiDiePackagesKeepTheirSocketAndDistinctKeys) {
  TempTree tree;
  testing::PowercapScenario scenario;
  scenario.zones = {{"intel-rapl:0", "package-0-die-0", 100, kIntelMaxEnergyRangeUj, true},
                    {"intel-rapl:1", "package-0-die-1", 200, kIntelMaxEnergyRangeUj, true},
                    {"intel-rapl:2", "package-1-die-0", 300, kIntelMaxEnergyRangeUj, true}};
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 3u);
  EXPECT_EQ(find(s, "intel-rapl:0")->socket, 0);
  EXPECT_EQ(find(s, "intel-rapl:1")->socket, 0);
  EXPECT_EQ(find(s, "intel-rapl:2")->socket, 1);
  for (const auto& r : s.readings) EXPECT_EQ(r.domain, "package");
}

TEST(RaplPowercap, ParsesZoneNamesStrictly) {
  auto die = parse_rapl_zone_name("package-1-die-2\n");
  ASSERT_TRUE(die.has_value());
  EXPECT_EQ(die->domain, "package");
  EXPECT_EQ(die->socket, 1);
  EXPECT_EQ(die->die, 2);
  EXPECT_EQ(parse_rapl_zone_name("dram")->domain, "dram");
  for (std::string_view bad : {"", "package-", "package-x", "package--1", "package-0-die-", "gpu",
                               "Package-0", "package-0 extra"}) {
    EXPECT_FALSE(parse_rapl_zone_name(bad).has_value()) << bad;
  }
}

TEST(RaplPowercap, UnknownDomainIsSkippedWithANote) {
  TempTree tree;
  auto scenario = testing::one_socket();
  scenario.zones.push_back({"intel-rapl:0:2", "gpu-tile", 1, kIntelMaxEnergyRangeUj, true});
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  EXPECT_TRUE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("skipped intel-rapl:0:2: unknown domain \"gpu-tile\""));
  EXPECT_EQ(source.sample().readings.size(), 3u);
}

TEST(RaplPowercap, MalformedEnergyIsANamedErrorAndOtherZonesStillRead) {
  struct Case {
    const char* contents;
    const char* says;
  };
  for (Case c : {Case{"", "empty"}, Case{"abc\n", "\"abc\""}, Case{"-5\n", "\"-5\""},
                 Case{"262143328851\n", "exceeds max_energy_range_uj 262143328850"}}) {
    TempTree tree;
    testing::write_powercap(SysfsWriter(tree), testing::two_socket_with_dram());
    RaplPowercapSource source(tree.paths());
    ASSERT_TRUE(source.probe().available);
    SysfsWriter(tree).write(testing::powercap_device_dir("intel-rapl:1:0") + "/energy_uj",
                            c.contents);

    Sample s = source.sample();
    ASSERT_EQ(s.errors.size(), 1u) << c.contents;
    EXPECT_EQ(s.errors[0].kind, ErrorKind::malformed);
    EXPECT_THAT(s.errors[0].path, HasSubstr("intel-rapl:1:0/energy_uj"));
    EXPECT_THAT(s.errors[0].detail, HasSubstr(c.says));
    ASSERT_EQ(s.readings.size(), 3u);
    EXPECT_EQ(find(s, "intel-rapl:0")->raw, 200000000000u);
    EXPECT_EQ(find(s, "intel-rapl:0:0")->raw, 7000000u);
    EXPECT_EQ(find(s, "intel-rapl:1")->raw, 12345678901u);
  }
}

TEST(RaplPowercap, EnergyEqualToMaxRangeIsTheWrapPointReportedAsZero) {
  TempTree tree;
  auto scenario = testing::amd_zen();
  scenario.zones[0].energy_uj = kEpycMaxEnergyRangeUj;
  testing::write_powercap(SysfsWriter(tree), scenario);
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  EXPECT_TRUE(s.errors.empty());
  EXPECT_EQ(find(s, "intel-rapl:0")->raw, 0u);
}

TEST(RaplPowercap, ZoneThatDisappearsBetweenSamplesIsAnAbsentError) {
  TempTree tree;
  testing::write_powercap(SysfsWriter(tree), testing::two_socket_with_dram());
  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  EXPECT_EQ(source.sample().readings.size(), 4u);

  // Unloading the driver for one package takes its folder and its class link away.
  tree.remove(testing::powercap_device_dir("intel-rapl:1"));
  tree.remove("sys/class/powercap/intel-rapl:1");
  tree.remove("sys/class/powercap/intel-rapl:1:0");
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 2u);
  ASSERT_EQ(s.errors.size(), 2u);
  for (const auto& e : s.errors) EXPECT_EQ(e.kind, ErrorKind::absent) << e.message();
  EXPECT_NE(find_error(s, "intel-rapl:1/energy_uj"), nullptr);
  EXPECT_NE(find_error(s, "intel-rapl:1:0/energy_uj"), nullptr);

  // Probing again forgets the zones that went.
  Availability a = source.probe();
  EXPECT_THAT(a.reason, HasSubstr("2 zones: package-0 (intel-rapl:0), dram (intel-rapl:0:0)"));
  EXPECT_TRUE(source.sample().errors.empty());
}

TEST(RaplPowercap, NoPowercapClassSaysWhy) {
  TempTree tree;
  tree.mkdir("sys/class");
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  EXPECT_FALSE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("CONFIG_POWERCAP"));
  EXPECT_THAT(a.reason, HasSubstr("VM"));
  Sample s = source.sample();
  EXPECT_TRUE(s.readings.empty());
  EXPECT_TRUE(s.errors.empty());
}

TEST(RaplPowercap, PowercapWithoutIntelRaplZonesSaysWhy) {
  TempTree tree;
  tree.mkdir("sys/class/powercap");
  // Only another control type, as with intel-rapl-mmio alone or a dtpm tree.
  tree.mkdir("sys/devices/virtual/powercap/dtpm");
  tree.symlink("../../devices/virtual/powercap/dtpm", "sys/class/powercap/dtpm");
  RaplPowercapSource source(tree.paths());
  Availability a = source.probe();
  EXPECT_FALSE(a.available);
  EXPECT_THAT(a.reason, HasSubstr("no intel-rapl zones"));
}

TEST(RaplPowercap, MatchesTheHostsOwnPowercapTree) {
  RaplPowercapSource source(HostPaths{});
  Availability a = source.probe();
  if (!a.available) GTEST_SKIP() << "this host has no readable RAPL: " << a.reason;
  Sample s = source.sample();
  EXPECT_FALSE(s.readings.empty());
  for (const auto& r : s.readings) EXPECT_LT(r.raw, r.modulus) << r.key;
}

// Root reads any file whatever its mode, so the unprivileged view is taken in a child that drops
// to nobody and reports back through a pipe.
std::string probe_and_sample_as_nobody(const TempTree& tree) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
      out = "setresuid failed";
    } else {
      RaplPowercapSource source(tree.paths());
      Availability a = source.probe();
      Sample s = source.sample();
      out = std::string(a.available ? "available" : "unavailable") + "\nreason=" + a.reason +
            "\nremedy=" + a.remedy + "\nreadings=" + std::to_string(s.readings.size()) + "\n";
      for (const auto& e : s.errors) out += "error=" + e.message() + "\n";
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST(RaplPowercap, UnreadableEnergyIsAPermissionErrorWithARemedy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create files nobody cannot read";
  TempTree tree;
  tree.chmod("", std::filesystem::perms(0755));  // mkdtemp makes it 0700
  testing::write_powercap(SysfsWriter(tree), testing::one_socket());

  std::string all_denied = probe_and_sample_as_nobody(tree);
  EXPECT_THAT(all_denied, HasSubstr("unavailable\n"));
  EXPECT_THAT(all_denied, HasSubstr("reason=no energy_uj readable in 3 zones"));
  EXPECT_THAT(all_denied, HasSubstr("intel-rapl:0/energy_uj: permission"));
  EXPECT_THAT(all_denied, HasSubstr("remedy=energy_uj is readable only by root"));
  EXPECT_THAT(all_denied, HasSubstr("chmod 0440"));

  // A udev rule that opened the package alone: it reads, the others are permission errors.
  tree.chmod(testing::powercap_device_dir("intel-rapl:0") + "/energy_uj",
             std::filesystem::perms(0444));
  std::string partial = probe_and_sample_as_nobody(tree);
  EXPECT_THAT(partial, HasSubstr("available\n"));
  EXPECT_THAT(partial, HasSubstr("readings=1\n"));
  EXPECT_THAT(partial, HasSubstr("error=" +
                                 tree.path("sys/class/powercap/intel-rapl:0:0/energy_uj").string() +
                                 ": permission"));
  EXPECT_THAT(partial, HasSubstr("remedy=energy_uj is readable only by root"));
}

TEST(RaplPowercap, ReadingsAdvanceByExactlyWattsTimesSecondsAcrossTheWrap) {
  TempTree tree;
  auto scenario = testing::two_socket_with_dram();
  // A small range so the 42 W package wraps many times in a few ticks.
  for (auto& z : scenario.zones) {
    z.max_energy_range_uj = 100000000;  // 100 J
    z.energy_uj %= z.max_energy_range_uj;
  }
  scenario.zones[0].energy_uj = 99999999;
  PowercapDriver driver(SysfsWriter(tree), scenario);
  ASSERT_EQ(driver.set_domain_watts("package", 42.5), 2);
  ASSERT_EQ(driver.set_domain_watts("dram", 7), 2);

  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample prev = source.sample();
  ASSERT_TRUE(prev.errors.empty());
  std::map<std::string, uint64_t> summed;
  int wraps = 0;
  for (int tick = 0; tick < 20; ++tick) {
    driver.advance(0.7 + 0.01 * tick);
    Sample cur = source.sample();
    ASSERT_TRUE(cur.errors.empty());
    for (const auto& r : cur.readings) {
      const Reading* p = find(prev, r.key);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(r.modulus, 100000000u);
      EXPECT_EQ(r.raw, driver.energy_uj(r.key));
      wraps += r.raw < p->raw;
      summed[r.key] += delta(p->raw, r.raw, r.modulus);
    }
    prev = cur;
  }
  EXPECT_GT(wraps, 5);
  // 20 ticks of 0.7 + 0.01 × i s = 15.9 s.
  EXPECT_EQ(driver.added_uj("intel-rapl:0"), 675750000u);    // 42.5 W × 15.9 s
  EXPECT_EQ(driver.added_uj("intel-rapl:0:0"), 111300000u);  // 7 W × 15.9 s
  for (const auto& z : scenario.zones) EXPECT_EQ(summed[z.key], driver.added_uj(z.key)) << z.key;
  EXPECT_DOUBLE_EQ(driver.added_joules("intel-rapl:1"), 675.75);
}

// The number after "\"<key>\":" in the driver's one-line JSON report.
double report_value(const std::string& json, const std::string& key) {
  auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
}

std::string slurp(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(FakePowercapDriverTool, CountersInTheTreeMatchTheReportedJoulesAcrossWraps) {
  const std::string tool = std::string(WATTPROBE_TOOLS_DIR) + "/fake_powercap_driver";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "tool not built: " << tool;
  TempTree tree;
  const std::string report = tree.path("driver.json").string();
  const std::string cmd = tool + " --root " + tree.root().string() +
                          " --scenario amd_zen --watts package=30,core=10 --period-ms 10"
                          " --max-range-uj 1000000 --duration-s 0.3 --report " +
                          report + " > " + tree.path("stdout").string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_EQ(slurp(tree.path("stdout")), "ready\n");

  const std::string json = slurp(report);
  const double elapsed = report_value(json, "elapsed_s");
  const double pkg_j = report_value(json, "intel-rapl:0");
  const double core_j = report_value(json, "intel-rapl:0:0");
  EXPECT_GE(elapsed, 0.3);
  EXPECT_NEAR(pkg_j, 30 * elapsed, 1e-4) << json;
  EXPECT_NEAR(core_j, 10 * elapsed, 1e-4) << json;
  EXPECT_GT(pkg_j, 5.0);  // 1 J range: wrapped at least five times

  RaplPowercapSource source(tree.paths());
  ASSERT_TRUE(source.probe().available);
  Sample s = source.sample();
  ASSERT_EQ(s.readings.size(), 2u);
  // The tree holds start + added, modulo the range, to the µJ.
  const auto start = testing::amd_zen();
  for (int i = 0; i < 2; ++i) {
    const std::string& key = start.zones[i].key;
    const auto added_uj = static_cast<uint64_t>(std::llround(report_value(json, key) * 1e6));
    EXPECT_EQ(find(s, key)->raw, (start.zones[i].energy_uj % 1000000 + added_uj) % 1000000) << key;
    EXPECT_EQ(find(s, key)->modulus, 1000000u);
  }
}

TEST(FakePowercapDriverTool, FollowLoadSetsPackagePowerFromTheHostsBusyFraction) {
  const std::string tool = std::string(WATTPROBE_TOOLS_DIR) + "/fake_powercap_driver";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "tool not built: " << tool;
  TempTree tree;
  const std::string report = tree.path("driver.json").string();
  const std::string cmd = tool + " --root " + tree.root().string() +
                          " --scenario two_socket_with_dram --watts dram=5"
                          " --follow-load idle=20,k=60 --period-ms 20 --duration-s 0.3 --report " +
                          report + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string json = slurp(report);
  const double busy = report_value(json, "busy");
  EXPECT_GE(busy, 0.0);
  EXPECT_LE(busy, 1.0);
  const double elapsed = report_value(json, "elapsed_s");
  // Between all idle (20 W) and all busy (80 W) over the run; dram stays at its fixed 5 W.
  EXPECT_GE(report_value(json, "intel-rapl:1"), 20 * elapsed - 1e-4) << json;
  EXPECT_LE(report_value(json, "intel-rapl:1"), 80 * elapsed + 1e-4) << json;
  EXPECT_NEAR(report_value(json, "intel-rapl:1:0"), 5 * elapsed, 1e-4) << json;
}

TEST(FakePowercapDriverTool, RejectsAnUnknownScenarioWithExitCode2) {
  const std::string tool = std::string(WATTPROBE_TOOLS_DIR) + "/fake_powercap_driver";
  if (!std::filesystem::exists(tool)) GTEST_SKIP() << "tool not built: " << tool;
  TempTree tree;
  const std::string cmd =
      tool + " --root " + tree.root().string() + " --scenario nope --watts package=1 2>/dev/null";
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace wattprobe
