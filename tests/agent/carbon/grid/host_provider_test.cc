#include "agent/carbon/grid/host_provider.h"

#include <gtest/gtest.h>

#include "agent/base/guest_energy_file.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

TEST(HostGridProvider, TakesTheHostsIntensityFromTheVmsFolder) {
  TempTree tree;
  GuestEnergyFile f;
  f.vm = "guest1";
  f.interval_seconds = 1;
  f.idle_attribution = "separate";
  f.host_time_ms = 1764230000000;
  f.grid_intensity = 123.5;
  tree.write("share/energy.json", to_json(f));
  HostGridProvider p(tree.path("share"), "");
  GridFetch got = p.fetch(0);
  ASSERT_TRUE(got.reading.has_value()) << got.error.message();
  EXPECT_DOUBLE_EQ(got.reading->grams_per_kwh, 123.5);
  EXPECT_EQ(got.reading->signal, "host");

  f.grid_intensity.reset();
  tree.write("share/energy.json", to_json(f));
  got = p.fetch(0);
  EXPECT_FALSE(got.reading.has_value());
  EXPECT_EQ(got.reason, "absent");

  tree.write("share/energy.json", "{");
  got = p.fetch(0);
  EXPECT_EQ(got.reason, "malformed");
  EXPECT_NE(got.error.message().find("energy.json"), std::string::npos);
}

}  // namespace
}  // namespace wattprobe
