#include "exporters/guest_energy.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "agent/base/text_file.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;
using testing::TempTree;

Series workload(const std::string& name, const std::string& kind, const std::string& source,
                const std::string& domain, double joules, const std::string& ns = "") {
  return {{{"workload", name},
           {"kind", kind},
           {"namespace", ns},
           {"pod", ""},
           {"container", ""},
           {"domain", domain},
           {"source", source},
           {"measured", source == "model" ? "false" : "true"}},
          joules};
}

Series source_info(const std::string& source, const std::string& domain, bool measured,
                   const std::string& state) {
  return {{{"source", source},
           {"domain", domain},
           {"measured", measured ? "true" : "false"},
           {"state", state}},
          state == "ok" ? 1.0 : 0.0};
}

Snapshot two_vms_and_a_service() {
  Snapshot s;
  s.timestamp_ms = 1764230000000;
  s.families.push_back({"wattprobe_workload_energy_joules_total",
                        "",
                        MetricType::counter,
                        {workload("guest1", "vm", "rapl_powercap", "package", 100),
                         workload("guest1", "vm", "model", "package", 5),
                         workload("guest1", "vm", "rapl_powercap", "dram", 7),
                         workload("vms/db", "vm", "rapl_powercap", "package", 40, "vms"),
                         workload("nginx.service", "service", "rapl_powercap", "package", 900)}});
  s.families.push_back({"wattprobe_energy_source_info",
                        "",
                        MetricType::gauge,
                        {source_info("rapl_powercap", "package", true, "stalled"),
                         source_info("model", "package", false, "ok"),
                         source_info("rapl_powercap", "dram", true, "ok")}});
  s.families.push_back({"wattprobe_grid_carbon_intensity_grams_per_kwh",
                        "",
                        MetricType::gauge,
                        {{{{"zone", ""}, {"provider", "static"}, {"signal", "static"}}, 321}}});
  return s;
}

TEST(GuestEnergyFiles, EachVmGetsItsOwnJoulesPerDomainAndWhetherMeasuredNow) {
  GuestEnergyOptions o;
  o.idle_attribution = "even";
  o.pue = 1.4;
  auto files = guest_energy_files(two_vms_and_a_service(), o, 9);
  ASSERT_EQ(files.size(), 2u);
  const GuestEnergyFile& g = files.at("guest1");
  EXPECT_EQ(g.vm, "guest1");
  EXPECT_EQ(g.sequence, 9u);
  EXPECT_TRUE(g.idle_included);
  EXPECT_EQ(g.grid_intensity, 321);
  EXPECT_DOUBLE_EQ(g.pue, 1.4);
  ASSERT_EQ(g.domains.size(), 2u);
  EXPECT_EQ(g.domains[0].domain, "dram");
  EXPECT_DOUBLE_EQ(g.domains[0].joules, 7);
  EXPECT_TRUE(g.domains[0].measured);
  EXPECT_EQ(g.domains[1].domain, "package");
  EXPECT_DOUBLE_EQ(g.domains[1].joules, 105) << "every source's share of the domain";
  EXPECT_FALSE(g.domains[1].measured) << "the package comes from the estimate now";
  const GuestEnergyFile& db = files.at("vms_db");
  ASSERT_EQ(db.domains.size(), 1u);
  EXPECT_DOUBLE_EQ(db.domains[0].joules, 40) << "nothing of another VM or the host";
}

TEST(GuestEnergyFiles, TwoVmsWithOneFolderNameGetNoFileRatherThanEachOthersJoules) {
  Snapshot s = two_vms_and_a_service();
  s.families[0].series.push_back(workload("vms_db", "vm", "rapl_powercap", "package", 9));
  auto files = guest_energy_files(s, GuestEnergyOptions{}, 1);
  EXPECT_EQ(files.count("vms_db"), 0u);
  EXPECT_EQ(files.count("guest1"), 1u);
}

class GuestEnergyWriterFixture : public ::testing::Test {
 protected:
  GuestEnergyOptions options() {
    GuestEnergyOptions o;
    o.dir = tree.path("guests");
    return o;
  }
  TempTree tree;
};

TEST_F(GuestEnergyWriterFixture, WritesOneFolderPerVmWithItsFileOnly) {
  GuestEnergyWriter w(options());
  ASSERT_TRUE(w.open().ok());
  EXPECT_TRUE(w.write(two_vms_and_a_service()).empty());
  auto text = read_text(tree.path("guests/guest1/energy.json"));
  ASSERT_TRUE(text.ok());
  auto parsed = parse_guest_energy(*text, "energy.json");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->sequence, 1u);
  int entries = 0;
  for (const auto& e : fs::directory_iterator(tree.path("guests/guest1"))) {
    ++entries;
    EXPECT_EQ(e.path().filename(), "energy.json") << "no temporary left behind";
  }
  EXPECT_EQ(entries, 1);
  EXPECT_TRUE(fs::exists(tree.path("guests/vms_db/energy.json")));
  EXPECT_FALSE(fs::exists(tree.path("guests/nginx.service")));
  w.write(two_vms_and_a_service());
  parsed = parse_guest_energy(*read_text(tree.path("guests/guest1/energy.json")), "energy.json");
  EXPECT_EQ(parsed->sequence, 2u);
}

TEST_F(GuestEnergyWriterFixture, NeverWritesThroughWhatAGuestPlanted) {
  tree.write("host-secret", "untouched\n");
  // The VM's folder replaced by a symlink to somewhere else of the host.
  tree.mkdir("guests");
  tree.mkdir("elsewhere");
  fs::create_symlink(tree.path("elsewhere"), tree.path("guests/guest1"));
  // In the other VM's folder, the temporary's name and energy.json point at a host file.
  tree.mkdir("guests/vms_db");
  fs::create_symlink(tree.path("host-secret"), tree.path("guests/vms_db/.energy.json.tmp"));
  fs::create_hard_link(tree.path("host-secret"), tree.path("guests/vms_db/energy.json"));

  GuestEnergyWriter w(options());
  ASSERT_TRUE(w.open().ok());
  std::vector<std::string> log = w.write(two_vms_and_a_service());
  ASSERT_EQ(log.size(), 1u);
  EXPECT_NE(log[0].find("guest1"), std::string::npos);
  EXPECT_TRUE(fs::is_empty(tree.path("elsewhere")));
  EXPECT_EQ(*read_text(tree.path("host-secret")), "untouched\n");
  EXPECT_FALSE(fs::is_symlink(tree.path("guests/vms_db/energy.json")));
  EXPECT_TRUE(parse_guest_energy(*read_text(tree.path("guests/vms_db/energy.json")), "x").ok());

  std::vector<Family> families;
  w.append_families(families);
  double errors = 0;
  for (const Family& f : families) {
    if (f.name != "wattprobe_agent_guest_energy_errors_total") continue;
    for (const Series& s : f.series) errors += s.value;
  }
  EXPECT_EQ(errors, 1);
  EXPECT_TRUE(w.write(two_vms_and_a_service()).empty()) << "a failure is logged once";
}

TEST_F(GuestEnergyWriterFixture, MissingParentIsAnErrorAtStart) {
  GuestEnergyOptions o;
  o.dir = tree.path("no/such/parent/guests");
  GuestEnergyWriter w(o);
  auto opened = w.open();
  ASSERT_FALSE(opened.ok());
  EXPECT_NE(opened.error().message().find("no/such/parent/guests"), std::string::npos);
}

}  // namespace
}  // namespace wattprobe
