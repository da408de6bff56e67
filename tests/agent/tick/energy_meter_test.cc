#include "agent/tick/energy_meter.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace wattprobe
