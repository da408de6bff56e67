#include "collectors/energy/host_energy.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;
using namespace std::chrono_literals;

class HostEnergyFixture : public ::testing::Test {
 protected:
  void write(uint64_t sequence, double package_joules, bool measured = true) {
    GuestEnergyFile f;
    f.vm = "guest1";
    f.sequence = sequence;
    f.host_time_ms = 1;
    f.interval_seconds = 1;
    f.idle_attribution = "separate";
    f.domains = {{"package", package_joules, measured}, {"dram", 2.0, true}};
    tree.write("share/energy.json", to_json(f));
  }
  HostEnergySource source() {
    return HostEnergySource(tree.path("share"), [this] { return now; });
  }
  TempTree tree;
  std::chrono::steady_clock::time_point now{};
};

TEST_F(HostEnergyFixture, EachDomainIsAMicrojouleCounterThatResetsWhenLower) {
  write(1, 12.5);
  HostEnergySource s = source();
  Availability a = s.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("guest1"), std::string::npos);
  Sample got = s.sample();
  ASSERT_EQ(got.readings.size(), 2u);
  const Reading& r = got.readings[0];
  EXPECT_EQ(r.domain, "package");
  EXPECT_EQ(r.socket, -1);
  EXPECT_EQ(r.raw, 12'500'000u);
  EXPECT_DOUBLE_EQ(r.unit_joules, 1e-6);
  EXPECT_TRUE(r.reset_when_lower);
  EXPECT_TRUE(r.measured);
  EXPECT_FALSE(r.known_stalled);
  EXPECT_TRUE(s.knows_stalls());
}

TEST_F(HostEnergyFixture, AHostEstimateStaysAnEstimate) {
  write(1, 12.5, /*measured=*/false);
  HostEnergySource s = source();
  EXPECT_FALSE(s.sample().readings[0].measured);
}

TEST_F(HostEnergyFixture, SequenceStandingStillForThreeHostTicksIsStalledUntilItMoves) {
  write(1, 10);
  HostEnergySource s = source();
  EXPECT_FALSE(s.sample().readings[0].known_stalled);
  now += 2s;
  EXPECT_FALSE(s.sample().readings[0].known_stalled) << "one late write is not a stall";
  now += 2s;
  Sample stale = s.sample();
  EXPECT_TRUE(stale.readings[0].known_stalled);
  EXPECT_TRUE(stale.readings[1].known_stalled);
  EXPECT_EQ(stale.readings[0].raw, 10'000'000u) << "the last figures are kept";
  write(2, 11);
  EXPECT_FALSE(s.sample().readings[0].known_stalled);
}

TEST_F(HostEnergyFixture, FileGoneIsStalledAtOnceAndCountedAbsent) {
  write(1, 10);
  HostEnergySource s = source();
  s.sample();
  tree.remove("share/energy.json");
  Sample got = s.sample();
  ASSERT_EQ(got.errors.size(), 1u);
  EXPECT_EQ(got.errors[0].kind, ErrorKind::absent);
  ASSERT_EQ(got.readings.size(), 2u);
  EXPECT_TRUE(got.readings[0].known_stalled);
}

TEST_F(HostEnergyFixture, MalformedOrNewerFileKeepsTheLastGoodFiguresAndCountsWhy) {
  write(1, 10);
  HostEnergySource s = source();
  s.sample();
  tree.write("share/energy.json", "{\"schema\": \"wattprobe.guest-energy\", \"ver");
  Sample torn = s.sample();
  ASSERT_EQ(torn.errors.size(), 1u);
  EXPECT_EQ(torn.errors[0].kind, ErrorKind::malformed);
  ASSERT_EQ(torn.readings.size(), 2u);
  EXPECT_EQ(torn.readings[0].raw, 10'000'000u);
  EXPECT_FALSE(torn.readings[0].known_stalled) << "stale only once the sequence stands still";
  tree.write("share/energy.json",
             "{\"schema\": \"wattprobe.guest-energy\", \"version\": 9, \"vm\": \"x\"}");
  Sample newer = s.sample();
  ASSERT_EQ(newer.errors.size(), 1u);
  EXPECT_EQ(newer.errors[0].kind, ErrorKind::unsupported);
  now += 5s;
  EXPECT_TRUE(s.sample().readings[0].known_stalled);
}

TEST_F(HostEnergyFixture, NoPathIsNotAvailableWithTheRemedy) {
  HostEnergySource none("");
  Availability a = none.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("--host-energy-path"), std::string::npos);
}

std::string state_of(const HostEnergySource& s) {
  std::vector<Family> fams;
  s.append_families(fams);
  std::string on;
  for (const Family& f : fams) {
    if (f.name != "wattprobe_host_energy_state") continue;
    for (const Series& series : f.series)
      if (series.value == 1) on += series.labels.at(0).second;
  }
  return on;
}

// Issue 25: a guest often boots before its host has written the VM's file. The source starts
// (available, "not yet available" in its reason, state waiting), has nothing to count until the
// file comes, and then counts from that first good file.
TEST_F(HostEnergyFixture, NoFileYetIsWaitingNotARefusal) {
  tree.mkdir("share");
  HostEnergySource s = source();
  Availability a = s.probe();
  EXPECT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("not yet available"), std::string::npos) << a.reason;
  EXPECT_NE(a.remedy.find("--guest-energy-dir"), std::string::npos);
  Sample first = s.sample();
  EXPECT_TRUE(first.readings.empty());
  ASSERT_EQ(first.errors.size(), 1u);
  EXPECT_EQ(first.errors[0].kind, ErrorKind::absent);
  EXPECT_EQ(state_of(s), "waiting");
  std::vector<std::string> doctor = s.doctor_report();
  ASSERT_FALSE(doctor.empty());
  EXPECT_NE(doctor[0].find("energy.json"), std::string::npos);

  write(1, 500.0);
  Sample got = s.sample();
  ASSERT_EQ(got.readings.size(), 2u);
  EXPECT_EQ(got.readings[0].raw, 500'000'000u);
  EXPECT_FALSE(got.readings[0].known_stalled);
  EXPECT_EQ(state_of(s), "ok");
}

TEST_F(HostEnergyFixture, DoctorSaysWhatTheFileHolds) {
  write(7, 10);
  std::vector<std::string> doctor = source().doctor_report();
  ASSERT_GE(doctor.size(), 3u);
  EXPECT_NE(doctor[0].find("VM guest1"), std::string::npos);
  EXPECT_NE(doctor[0].find("sequence 7"), std::string::npos);
  EXPECT_NE(doctor[1].find("package: 10.000 J, measured on the host"), std::string::npos);
}

}  // namespace
}  // namespace wattprobe
