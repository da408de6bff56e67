#include "agent/tick/energy_meter.h"

#include <gtest/gtest.h>

#include <map>

#include "agent/tick/attribution.h"

namespace wattprobe {
namespace {

/// A source whose readings the test sets directly, to check the meter's arithmetic alone.
class ScriptedSource : public EnergySource {
 public:
  ScriptedSource(std::string name, bool measured) : name_(std::move(name)), measured_(measured) {}
  std::string_view name() const override { return name_; }
  bool measured() const override { return measured_; }
  Availability probe() override { return {true, "scripted", ""}; }
  Sample sample() override { return next; }
  Sample next;

 private:
  std::string name_;
  bool measured_;
};

Reading counter(std::string domain, int socket, std::string key, uint64_t raw, uint64_t modulus) {
  Reading r;
  r.domain = std::move(domain);
  r.socket = socket;
  r.key = std::move(key);
  r.raw = raw;
  r.modulus = modulus;
  r.unit_joules = 1e-6;
  return r;
}

TEST(EnergyMeter, CounterDeltaWrapsAtModulus) {
  EXPECT_EQ(counter_delta(100, 250, 1000), 150u);
  EXPECT_EQ(counter_delta(900, 50, 1000), 150u);
  EXPECT_EQ(counter_delta(0xFFFFFFF0u, 0x10u, 1ull << 32), 0x20u);
  EXPECT_EQ(counter_delta(UINT64_MAX - 1, 3, 0), 5u);
}

TEST(EnergyMeter, FirstTickPrimesThenCountsAcrossWrap) {
  std::vector<std::unique_ptr<EnergySource>> v;
  auto* s = new ScriptedSource("rapl_powercap", true);
  v.emplace_back(s);
  EnergyMeter m(std::move(v));
  const uint64_t range = 262143328850;
  s->next.readings = {counter("package", 0, "intel-rapl:0", range - 10'000'000, range)};
  EXPECT_EQ(m.tick(1).domains[0].joules, 0);
  s->next.readings = {counter("package", 0, "intel-rapl:0", 32'000'000, range)};
  NodeEnergy e = m.tick(1);
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 42.0);
  EXPECT_DOUBLE_EQ(e.domains[0].watts, 42.0);
  EXPECT_DOUBLE_EQ(e.domains[0].total_joules, 42.0);
}

TEST(EnergyMeter, LowerPrioritySourceNeverCountsAClaimedDomain) {
  std::vector<std::unique_ptr<EnergySource>> v;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  auto* hw = new ScriptedSource("hwmon", true);
  v.emplace_back(rapl);
  v.emplace_back(hw);
  EnergyMeter m(std::move(v));
  rapl->next.readings = {counter("package", 0, "intel-rapl:0", 0, 0)};
  Reading amd = counter("package", 0, "amd_energy/Esocket0", 0, 0);
  Reading meter;
  meter.domain = "platform";
  meter.key = "power_meter/power1";
  meter.kind = ReadingKind::power_gauge;
  meter.watts = 150;
  hw->next.readings = {amd, meter};
  m.tick(1);
  rapl->next.readings[0].raw = 10'000'000;
  hw->next.readings[0].raw = 99'000'000;
  NodeEnergy e = m.tick(2);
  ASSERT_EQ(e.domains.size(), 2u);
  EXPECT_EQ(e.domains[0].source, "rapl_powercap");
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 10);
  EXPECT_EQ(e.domains[1].domain, "platform");
  EXPECT_DOUBLE_EQ(e.domains[1].joules, 300);  // 150 W × 2 s
}

TEST(EnergyMeter, ErrorsAreCountedByCollectorAndReason) {
  std::vector<std::unique_ptr<EnergySource>> v;
  auto* s = new ScriptedSource("rapl_powercap", true);
  v.emplace_back(s);
  EnergyMeter m(std::move(v));
  s->next.errors = {{ErrorKind::permission, "/sys/x", "open"}};
  s->next.readings = {counter("package", 0, "k", 5000, 1000)};  // above its own range
  m.tick(1);
  EXPECT_EQ(m.errors().at({"rapl_powercap", "permission"}), 1u);
  EXPECT_EQ(m.errors().at({"rapl_powercap", "malformed"}), 1u);
}

TEST(EnergyMeter, DiesOfOneSocketAddUp) {
  std::vector<std::unique_ptr<EnergySource>> v;
  auto* s = new ScriptedSource("rapl_powercap", true);
  v.emplace_back(s);
  EnergyMeter m(std::move(v));
  s->next.readings = {counter("package", 0, "intel-rapl:0", 0, 0),
                      counter("package", 0, "intel-rapl:1", 0, 0)};
  m.tick(1);
  s->next.readings[0].raw = 1'000'000;
  s->next.readings[1].raw = 2'000'000;
  NodeEnergy e = m.tick(1);
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 3);
}

Reading gauge(std::string domain, int socket, std::string key, double watts) {
  Reading r;
  r.domain = std::move(domain);
  r.socket = socket;
  r.key = std::move(key);
  r.kind = ReadingKind::power_gauge;
  r.watts = watts;
  return r;
}

/// What /metrics says of each {source, domain}: "state" label and value of
/// wattprobe_energy_source_info, and the measured label.
struct Info {
  std::string state, measured;
  double value = -1;
};
struct InfoMap {
  std::map<std::pair<std::string, std::string>, Info> by;
  Info operator()(const std::string& source, const std::string& domain) const {
    auto it = by.find({source, domain});
    return it == by.end() ? Info{} : it->second;
  }
};
InfoMap source_info(const EnergyMeter& m) {
  std::vector<Family> families;
  m.append_families(families);
  InfoMap out;
  for (const Family& f : families) {
    if (f.name != "wattprobe_energy_source_info") continue;
    for (const Series& s : f.series) {
      std::map<std::string, std::string> l(s.labels.begin(), s.labels.end());
      EXPECT_FALSE(out.by.count({l["source"], l["domain"]})) << "two info series for a domain";
      out.by[{l["source"], l["domain"]}] = {l["state"], l["measured"], s.value};
    }
  }
  return out;
}

double stalls_total(const EnergyMeter& m, const std::string& source, const std::string& domain) {
  std::vector<Family> families;
  m.append_families(families);
  for (const Family& f : families) {
    if (f.name != "wattprobe_agent_source_stalls_total") continue;
    for (const Series& s : f.series) {
      if (s.labels == Labels{{"source", source}, {"domain", domain}}) return s.value;
    }
  }
  return -1;
}

const DomainEnergy* row(const NodeEnergy& e, const std::string& source, const std::string& domain) {
  for (const DomainEnergy& d : e.domains)
    if (d.source == source && d.domain == domain) return &d;
  return nullptr;
}

/// One busy CPU in a one-second tick, for the attribution that follows the meter.
CpuTick busy_tick() {
  CpuTick cpu;
  cpu.capacity_ns = 2'000'000'000;
  cpu.idle_ns = 1'000'000'000;
  cpu.workloads = {{{"burner.service", "service", "", "", ""}, 1'000'000'000, 0, 0}};
  return cpu;
}

TEST(EnergyMeter, CounterThatStallsWhileBusyHandsItsDomainToTheNextSourceAndBack) {
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(rapl);
  standby.emplace_back(model);
  EnergyMeter m(std::move(chosen), std::move(standby));  // default policy: 3 ticks and 5 s
  Attribution attribution(AttributionOptions{});
  uint64_t pkg = 1'000'000'000, core = 0;
  auto tick = [&](uint64_t pkg_uj, uint64_t core_uj) {
    pkg += pkg_uj;
    core += core_uj;
    rapl->next.readings = {counter("package", 0, "intel-rapl:0", pkg, 0),
                           counter("core", 0, "intel-rapl:0:0", core, 0)};
    model->next.readings = {gauge("package", -1, "cpu", 7)};
    NodeEnergy e = m.tick(1, 1.0);
    attribution.apply(e, busy_tick(), 0);
    return e;
  };
  tick(0, 0);
  NodeEnergy e = tick(30'000'000, 10'000'000);
  ASSERT_EQ(e.domains.size(), 2u);  // the stand-in is read but not used
  EXPECT_DOUBLE_EQ(row(e, "rapl_powercap", "package")->joules, 30);
  EXPECT_EQ(source_info(m)("rapl_powercap", "package").state, "ok");
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "package"), 0);

  // Stuck while the host is busy: 0 J for 4 ticks (the evidence gathers), then stalled.
  for (int i = 0; i < 4; ++i) {
    e = tick(0, 10'000'000);
    ASSERT_NE(row(e, "rapl_powercap", "package"), nullptr) << i;
    EXPECT_EQ(row(e, "rapl_powercap", "package")->joules, 0);
  }
  e = tick(0, 10'000'000);
  EXPECT_TRUE(m.stalled("rapl_powercap", "package", 0));
  EXPECT_EQ(row(e, "rapl_powercap", "package"), nullptr);
  ASSERT_NE(row(e, "model", "package"), nullptr);
  EXPECT_DOUBLE_EQ(row(e, "model", "package")->joules, 7);
  EXPECT_FALSE(row(e, "model", "package")->measured);
  EXPECT_DOUBLE_EQ(row(e, "rapl_powercap", "core")->joules, 10);  // the rest is still measured
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "package"), 1);
  auto info = source_info(m);
  EXPECT_EQ(info("rapl_powercap", "package").state, "stalled");
  EXPECT_EQ(info("rapl_powercap", "package").value, 0);
  EXPECT_EQ(info("model", "package").state, "ok");
  EXPECT_EQ(info("model", "package").measured, "false");
  EXPECT_EQ(info("model", "package").value, 1);
  EXPECT_EQ(info("rapl_powercap", "core").value, 1);

  // It moves again: that tick's delta spans the stall the estimate already counted, so the
  // estimate still gives it; from the next tick the counter does.
  e = tick(500'000'000, 10'000'000);
  EXPECT_FALSE(m.stalled("rapl_powercap", "package", 0));
  EXPECT_EQ(row(e, "rapl_powercap", "package"), nullptr);
  EXPECT_DOUBLE_EQ(row(e, "model", "package")->joules, 7);
  e = tick(30'000'000, 10'000'000);
  EXPECT_DOUBLE_EQ(row(e, "rapl_powercap", "package")->joules, 30);
  EXPECT_EQ(row(e, "model", "package"), nullptr);
  info = source_info(m);
  EXPECT_EQ(info("rapl_powercap", "package").state, "ok");
  EXPECT_EQ(info("model", "package").state, "standby");
  EXPECT_EQ(info("model", "package").value, 0);
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "package"), 1);

  // Totals: the counter's own 30 + 0 × 4 + 30 J, the estimate's 7 J × 2 ticks.
  std::map<std::tuple<std::string, std::string, int>, double> totals;
  for (const auto& t : m.totals()) totals[{t.source, t.domain, t.socket}] = t.joules;
  EXPECT_DOUBLE_EQ((totals[{"rapl_powercap", "package", 0}]), 60);
  EXPECT_DOUBLE_EQ((totals[{"model", "package", -1}]), 14);
  // Conservation held in every tick, across the hand-over and back.
  EXPECT_EQ(attribution.conservation_violations(), 0u);
  AttributionTotals parts = attribution.totals();
  double package_parts = parts.idle_joules["package"] + parts.unattributed_joules["package"];
  for (const auto& w : parts.workloads) {
    for (const auto& [key, j] : w.joules)
      if (key.second == "package") package_parts += j;
  }
  EXPECT_NEAR(package_parts, 74, 1e-9);
}

TEST(EnergyMeter, IdleHostNeverCallsAStillCounterStalled) {
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(rapl);
  standby.emplace_back(model);
  EnergyMeter m(std::move(chosen), std::move(standby));
  rapl->next.readings = {counter("package", 0, "intel-rapl:0", 5, 0)};
  model->next.readings = {gauge("package", -1, "cpu", 1.5)};
  for (int i = 0; i < 100; ++i) {
    NodeEnergy e = m.tick(1, i % 2 ? 0.3 : std::optional<double>());
    ASSERT_EQ(e.domains.size(), 1u);
    ASSERT_EQ(e.domains[0].source, "rapl_powercap");
  }
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "package"), 0);
}

TEST(EnergyMeter, NonWatchedDomainsAndGaugesNeverStall) {
  std::vector<std::unique_ptr<EnergySource>> chosen;
  auto* s = new ScriptedSource("rapl_powercap", true);
  chosen.emplace_back(s);
  EnergyMeter m(std::move(chosen), {}, {}, StallPolicy{1, 0, 0.5});
  // A graphics plane at rest and a platform meter that reports a steady figure.
  s->next.readings = {counter("uncore", 0, "intel-rapl:0:1", 5, 0),
                      gauge("platform", -1, "power_meter/power1", 100)};
  for (int i = 0; i < 5; ++i) ASSERT_EQ(m.tick(1, 4.0).domains.size(), 2u);
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "uncore"), -1);  // not even watched
}

TEST(EnergyMeter, HostWideEstimateStandsInForEverySocketOfTheDomain) {
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(rapl);
  standby.emplace_back(model);
  // Socket 1's package counter was found stalled at start.
  EnergyMeter m(std::move(chosen), std::move(standby),
                {{"rapl_powercap", "package", 1, "intel-rapl:1"}});
  EXPECT_EQ(stalls_total(m, "rapl_powercap", "package"), 1);
  uint64_t p0 = 0;
  NodeEnergy e;
  for (int i = 0; i < 3; ++i) {
    p0 += 20'000'000;
    rapl->next.readings = {counter("package", 0, "intel-rapl:0", p0, 0),
                           counter("package", 1, "intel-rapl:1", 77, 0),
                           counter("dram", 0, "intel-rapl:0:0", p0 / 10, 0)};
    model->next.readings = {gauge("package", -1, "cpu", 9)};
    e = m.tick(1, 1.0);
  }
  // The estimate covers the whole host's CPUs: socket 0's counter steps aside rather than count
  // its package twice; dram is still measured.
  ASSERT_EQ(e.domains.size(), 2u);
  EXPECT_EQ(row(e, "rapl_powercap", "package"), nullptr);
  EXPECT_DOUBLE_EQ(row(e, "model", "package")->joules, 9);
  EXPECT_DOUBLE_EQ(row(e, "rapl_powercap", "dram")->joules, 2);
  EXPECT_EQ(source_info(m)("rapl_powercap", "package").state, "stalled");
}

TEST(EnergyMeter, ALowerChosenSourceWithTheSameSocketStandsInFirst) {
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  auto* hwmon = new ScriptedSource("hwmon", true);
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(rapl);
  chosen.emplace_back(hwmon);
  standby.emplace_back(model);
  EnergyMeter m(std::move(chosen), std::move(standby),
                {{"rapl_powercap", "package", 0, "intel-rapl:0"}});
  uint64_t amd = 0;
  NodeEnergy e;
  for (int i = 0; i < 2; ++i) {
    amd += 25'000'000;
    rapl->next.readings = {counter("package", 0, "intel-rapl:0", 3, 0)};
    hwmon->next.readings = {counter("package", 0, "amd_energy/Esocket0", amd, 0)};
    model->next.readings = {gauge("package", -1, "cpu", 9)};
    e = m.tick(1, 1.0);
  }
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_EQ(e.domains[0].source, "hwmon");
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 25);
  EXPECT_TRUE(e.domains[0].measured);
}

TEST(EnergyMeter, StalledDomainNoOtherSourceHasLeavesTheHostToTheEstimate) {
  // The H200 VM: the perf PMU lists only energy-psys and it reads 0 forever.
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* perf = new ScriptedSource("rapl_perf", true);
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(perf);
  standby.emplace_back(model);
  EnergyMeter m(std::move(chosen), std::move(standby), {}, StallPolicy{2, 0, 0.5});
  perf->next.readings = {counter("psys", -1, "energy-psys/cpu0", 0, 0)};
  model->next.readings = {gauge("package", -1, "cpu", 40)};
  NodeEnergy e;
  for (int i = 0; i < 4; ++i) e = m.tick(1, 8.0);
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_EQ(e.domains[0].source, "model");
  EXPECT_DOUBLE_EQ(e.domains[0].joules, 40);
  auto info = source_info(m);
  EXPECT_EQ(info("rapl_perf", "psys").state, "stalled");
  EXPECT_EQ(info("rapl_perf", "psys").value, 0);
  // Carbon and the ledger sum the host: that sum is now the estimate, said so.
  std::vector<bool> in = host_sum_domains(e);
  EXPECT_TRUE(in[0]);
}

TEST(EnergyMeter, WithoutAStandInAStalledDomainReportsNothing) {
  std::vector<std::unique_ptr<EnergySource>> chosen;
  auto* rapl = new ScriptedSource("rapl_powercap", true);
  chosen.emplace_back(rapl);
  EnergyMeter m(std::move(chosen), {}, {{"rapl_powercap", "core", 0, "intel-rapl:0:0"}});
  uint64_t pkg = 0;
  NodeEnergy e;
  for (int i = 0; i < 3; ++i) {
    pkg += 5'000'000;
    rapl->next.readings = {counter("package", 0, "intel-rapl:0", pkg, 0),
                           counter("core", 0, "intel-rapl:0:0", 9, 0)};
    e = m.tick(1, 1.0);
  }
  ASSERT_EQ(e.domains.size(), 1u);
  EXPECT_EQ(e.domains[0].domain, "package");
  auto info = source_info(m);
  EXPECT_EQ(info("rapl_powercap", "core").state, "stalled");
  EXPECT_EQ(info("rapl_powercap", "core").measured, "true");
  EXPECT_EQ(info("rapl_powercap", "core").value, 0);
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

/// A source that says itself when it is stalled, as `host` does.
class SelfReportingSource : public ScriptedSource {
 public:
  SelfReportingSource() : ScriptedSource("host", true) {}
  bool knows_stalls() const override { return true; }
};

TEST(EnergyMeter, SourceThatKnowsItStalledHandsOverAtOnceAndResumesWithoutANegativeStep) {
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  auto* host = new SelfReportingSource();
  auto* model = new ScriptedSource("model", false);
  chosen.emplace_back(host);
  standby.emplace_back(model);
  EnergyMeter m(std::move(chosen), std::move(standby));
  auto tick = [&](uint64_t raw, bool stalled, std::optional<double> busy = 1.0) {
    Reading r = counter("package", -1, "host:package", raw, 0);
    r.reset_when_lower = true;
    r.known_stalled = stalled;
    host->next.readings = {r};
    model->next.readings = {gauge("package", -1, "cpu", 5)};
    return m.tick(1, busy);
  };
  tick(1'000'000, false);
  // A guest busy between two host ticks sees no change: no evidence against the host.
  for (int i = 0; i < 8; ++i) EXPECT_NE(row(tick(1'000'000, false), "host", "package"), nullptr);
  EXPECT_FALSE(m.stalled("host", "package", -1));
  NodeEnergy e = tick(3'000'000, false);
  EXPECT_DOUBLE_EQ(row(e, "host", "package")->joules, 2);
  EXPECT_TRUE(row(e, "host", "package")->measured);

  // The host says nothing new for long enough: stalled at once, even on an idle guest.
  e = tick(3'000'000, true, 0.0);
  EXPECT_TRUE(m.stalled("host", "package", -1));
  EXPECT_EQ(row(e, "host", "package"), nullptr);
  EXPECT_DOUBLE_EQ(row(e, "model", "package")->joules, 5);
  EXPECT_EQ(stalls_total(m, "host", "package"), 1);
  EXPECT_EQ(source_info(m)("host", "package").state, "stalled");
  tick(3'000'000, true);
  EXPECT_EQ(stalls_total(m, "host", "package"), 1) << "one stall, counted once";

  // The host comes back without its checkpoint: lower figures, a reset, counted as nothing.
  e = tick(500'000, false);
  EXPECT_FALSE(m.stalled("host", "package", -1));
  EXPECT_EQ(row(e, "host", "package"), nullptr) << "the recovery tick is the stand-in's";
  e = tick(1'500'000, false);
  EXPECT_DOUBLE_EQ(row(e, "host", "package")->joules, 1);
  double total = 0;
  for (const auto& t : m.totals())
    if (t.source == "host") total = t.joules;
  EXPECT_DOUBLE_EQ(total, 3) << "2 J + 1 J: no step back, no wrap";
  EXPECT_EQ(m.errors().at({"host", "counter_reset"}), 1u);
}

TEST(EnergyMeter, AnEstimatedReadingOfAMeasuringSourceIsLabelledEstimated) {
  std::vector<std::unique_ptr<EnergySource>> chosen;
  auto* host = new SelfReportingSource();
  chosen.emplace_back(host);
  EnergyMeter m(std::move(chosen));
  Reading r = counter("package", -1, "host:package", 0, 0);
  r.measured = false;
  host->next.readings = {r};
  m.tick(1);
  host->next.readings[0].raw = 1'000'000;
  EXPECT_FALSE(row(m.tick(1), "host", "package")->measured);
  EXPECT_EQ(source_info(m)("host", "package").measured, "false");
}

}  // namespace
}  // namespace wattprobe
