#include "collectors/cpu/cpu_topology.h"

#include <gtest/gtest.h>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

TEST(CpuTopology, ParsesKernelCpuLists) {
  auto list = parse_cpu_list("0-3,8\n", "/x");
  ASSERT_TRUE(list.ok()) << list.error().message();
  EXPECT_EQ(*list, (std::vector<int>{0, 1, 2, 3, 8}));
  EXPECT_EQ(*parse_cpu_list("0,24\n", "/x"), (std::vector<int>{0, 24}));
  EXPECT_EQ(*parse_cpu_list("5\n", "/x"), (std::vector<int>{5}));
  EXPECT_TRUE(parse_cpu_list("\n", "/x")->empty());
}

TEST(CpuTopology, RejectsMalformedCpuListsNamingThePath) {
  for (std::string_view bad : {"0-", "-3", "3-1", "0,,2", "0,", "a", "0 - 3", "+1", "0-99999999"}) {
    auto list = parse_cpu_list(bad, "/sys/bus/event_source/devices/power/cpumask");
    ASSERT_FALSE(list.ok()) << bad;
    EXPECT_EQ(list.error().kind, ErrorKind::malformed) << bad;
    EXPECT_NE(list.error().message().find("power/cpumask"), std::string::npos);
  }
}

TEST(CpuTopology, FirstCpuOfEachPackage) {
  testing::TempTree tree;
  tree.write("sys/devices/system/cpu/online", "0-3\n");
  for (int cpu : {0, 1, 2, 3}) {
    tree.write("sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/physical_package_id",
               cpu % 2 == 0 ? "0\n" : "1\n");
  }
  auto packages = first_cpu_per_package(tree.paths());
  ASSERT_TRUE(packages.ok()) << packages.error().message();
  ASSERT_EQ(packages->size(), 2u);
  EXPECT_EQ((*packages)[0].package, 0);
  EXPECT_EQ((*packages)[0].cpu, 0);
  EXPECT_EQ((*packages)[1].package, 1);
  EXPECT_EQ((*packages)[1].cpu, 1);
}

TEST(CpuTopology, MissingTopologyIsAnError) {
  testing::TempTree tree;
  tree.write("sys/devices/system/cpu/online", "0\n");
  auto packages = first_cpu_per_package(tree.paths());
  ASSERT_FALSE(packages.ok());
  EXPECT_EQ(packages.error().kind, ErrorKind::absent);
}

TEST(CpuTopology, ReadsThisHost) {
  auto packages = first_cpu_per_package(HostPaths{});
  ASSERT_TRUE(packages.ok()) << packages.error().message();
  ASSERT_FALSE(packages->empty());
  EXPECT_EQ(packages->front().cpu, 0);
}

}  // namespace
}  // namespace wattprobe
