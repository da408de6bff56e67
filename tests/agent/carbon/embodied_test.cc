#include "agent/carbon/embodied.h"

#include <gtest/gtest.h>

#include <map>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

/// A two-socket Dell with 64 GiB, one SSD, one HDD, a GPU, and the virtual block devices the
/// inventory must skip.
void write_r740(const TempTree& t) {
  t.write("sys/class/dmi/id/sys_vendor", "Dell Inc.\n");
  t.write("sys/class/dmi/id/product_name", "PowerEdge R740\n");
  std::string cpuinfo;
  for (int cpu = 0; cpu < 4; ++cpu) {
    cpuinfo += "processor\t: " + std::to_string(cpu) +
               "\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ "
               "2.10GHz\nphysical id\t: " +
               std::to_string(cpu / 2) + "\ncore id\t\t: " + std::to_string(cpu % 2) + "\n\n";
  }
  t.write("proc/cpuinfo", cpuinfo);
  t.write("proc/meminfo", "MemTotal:       67108864 kB\nMemFree:        1000 kB\n");
  t.write("sys/block/nvme0n1/queue/rotational", "0\n");
  t.write("sys/block/sda/queue/rotational", "1\n");
  t.write("sys/block/loop0/queue/rotational", "0\n");
  t.write("sys/block/dm-0/queue/rotational", "0\n");
  t.write("sys/block/zram0/queue/rotational", "0\n");
  t.write("sys/bus/pci/devices/0000:3b:00.0/class", "0x030200\n");
  t.write("sys/bus/pci/devices/0000:00:1f.2/class", "0x010601\n");
}

TEST(Embodied, InventoryFromSysfsAndProcfs) {
  TempTree t;
  write_r740(t);
  DeviceInventory inv = read_inventory(t.paths());
  EXPECT_EQ(inv.vendor, "Dell Inc.");
  EXPECT_EQ(inv.product, "PowerEdge R740");
  EXPECT_EQ(inv.cpu_model, "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz");
  EXPECT_EQ(inv.sockets, 2);
  EXPECT_EQ(inv.memory_bytes, 64ull << 30);
  EXPECT_EQ(inv.ssds, std::vector<std::string>{"nvme0n1"});
  EXPECT_EQ(inv.hdds, std::vector<std::string>{"sda"});
  EXPECT_EQ(inv.gpus, std::vector<std::string>{"0000:3b:00.0"});
  EXPECT_TRUE(inv.problems.empty()) << inv.problems.front().message();
}

TEST(Embodied, CcfModelPerComponent) {
  TempTree t;
  write_r740(t);
  EmbodiedBreakdown b = embodied_from_inventory(read_inventory(t.paths()), {}, std::nullopt);
  std::map<std::string, double> g(b.grams_by_component.begin(), b.grams_by_component.end());
  EXPECT_DOUBLE_EQ(g["base"], 1000e3);
  EXPECT_NEAR(g["memory"], 48 * 533.0 / 384 * 1000, 1e-6);  // 48 GB over the 16 in the base
  EXPECT_DOUBLE_EQ(g["cpu"], 100e3);                        // one CPU beyond the base's one
  EXPECT_DOUBLE_EQ(g["ssd"], 100e3);
  EXPECT_DOUBLE_EQ(g["hdd"], 50e3);
  EXPECT_DOUBLE_EQ(g["gpu"], 150e3);
  EXPECT_NEAR(b.total_grams, 1400e3 + 48 * 533.0 / 384 * 1000, 1e-6);

  EmbodiedBreakdown declared = embodied_from_inventory(read_inventory(t.paths()), {}, 950.0);
  ASSERT_EQ(declared.grams_by_component.size(), 1u);
  EXPECT_EQ(declared.grams_by_component[0].first, "declared");
  EXPECT_DOUBLE_EQ(declared.total_grams, 950e3);
}

// An H200 VM: QEMU's emulated VGA (0x030000) beside the GPU (3D controller, 0x030200). The PCI
// display class sees two; NVML lists the one GPU, and that is what embodied carbon counts.
TEST(Embodied, GpusNvmlListsAreCountedOnceNotAsEveryDisplayDevice) {
  TempTree t;
  write_r740(t);
  t.write("sys/bus/pci/devices/0000:00:01.0/class", "0x030000\n");
  DeviceInventory inv = read_inventory(t.paths());
  ASSERT_EQ(inv.gpus.size(), 2u) << "the PCI display class lists the emulated VGA too";
  auto gpu_grams = [](const DeviceInventory& i) {
    EmbodiedBreakdown b = embodied_from_inventory(i, {}, std::nullopt);
    std::map<std::string, double> g(b.grams_by_component.begin(), b.grams_by_component.end());
    return g["gpu"];
  };
  EXPECT_DOUBLE_EQ(gpu_grams(inv), 2 * 150e3) << "without NVML, the PCI count stands";

  std::string_view from;
  inv.listed_gpus = 1;
  EXPECT_EQ(counted_gpus(inv, &from), 1u);
  EXPECT_EQ(from, "listed by the GPU sources");
  EXPECT_DOUBLE_EQ(gpu_grams(inv), 150e3);

  // Eight GPUs behind a switch the PCI scan of a container does not see: NVML still counts them.
  inv.listed_gpus = 8;
  EXPECT_DOUBLE_EQ(gpu_grams(inv), 8 * 150e3);

  // NVML that lists nothing (no driver) leaves the PCI count.
  inv.listed_gpus = 0;
  EXPECT_EQ(counted_gpus(inv, &from), 2u);
  EXPECT_EQ(from, "pci display class");
}

TEST(Embodied, BrokenFilesAreProblemsNotCrashes) {
  TempTree t;
  t.write("proc/meminfo", "MemTotal: lots\n");
  t.write("proc/cpuinfo", "model name\t: Some CPU\n");  // a VM without physical id
  t.write("sys/block/sda/queue/rotational", "maybe\n");
  t.write("sys/bus/pci/devices/0000:00:02.0/class", "vga\n");
  DeviceInventory inv = read_inventory(t.paths());
  EXPECT_EQ(inv.sockets, 1);
  EXPECT_EQ(inv.memory_bytes, 0u);
  EXPECT_TRUE(inv.ssds.empty() && inv.hdds.empty() && inv.gpus.empty());
  // dmi vendor, dmi product, meminfo, rotational, pci class.
  EXPECT_EQ(inv.problems.size(), 5u);
  EmbodiedBreakdown b = embodied_from_inventory(inv, {}, std::nullopt);
  EXPECT_DOUBLE_EQ(b.total_grams, 1000e3);
}

TEST(Embodied, ThisHostsInventoryReads) {
  DeviceInventory inv = read_inventory(HostPaths{});
  EXPECT_GE(inv.sockets, 1);
  EXPECT_GT(inv.memory_bytes, 0u);
  EXPECT_FALSE(inv.cpu_model.empty());
}

TEST(Embodied, LongevityPastLifetimeIsFullyAmortizedWithZeroRate) {
  const int64_t now = *parse_install_date("2026-06-01");
  auto five_years_ago = parse_install_date("2021-06-01");
  Longevity l = longevity(1000e3, five_years_ago, 4, now);
  EXPECT_DOUBLE_EQ(*l.amortized_ratio, 1.0);
  EXPECT_EQ(l.grams_per_second, 0);
  EXPECT_DOUBLE_EQ(l.lifetime_seconds, 4 * kSecondsPerYear);
  EXPECT_EQ(amortized_grams(1000e3, five_years_ago, 4, now - 1000, now), 0);
}

TEST(Embodied, LongevityOneYearIntoFourIsAQuarter) {
  const int64_t install = *parse_install_date("2025-01-01");
  const int64_t now = install + static_cast<int64_t>(kSecondsPerYear * 1000);
  Longevity l = longevity(1000e3, install, 4, now);
  EXPECT_NEAR(*l.amortized_ratio, 0.25, 1e-12);
  EXPECT_NEAR(*l.age_seconds, kSecondsPerYear, 1e-3);
  // 1000 kg over 4 years: 250 kg a year, about 28.5 g an hour.
  EXPECT_NEAR(l.grams_per_second * 3600, 1000e3 / (4 * 365.25 * 24), 1e-9);
  EXPECT_NEAR(amortized_grams(1000e3, install, 4, now - 3600000, now), 28.5192, 1e-4);
}

TEST(Embodied, AmortizationStopsExactlyAtEndOfLife) {
  const int64_t install = *parse_install_date("2020-01-01");
  const int64_t end = install + static_cast<int64_t>(4 * kSecondsPerYear * 1000);
  double rate = 1000e3 / (4 * kSecondsPerYear);
  // A tick straddling the end: only its first half is charged.
  EXPECT_NEAR(amortized_grams(1000e3, install, 4, end - 500, end + 500), rate * 0.5, 1e-9);
}

TEST(Embodied, InstallDateIsStrict) {
  EXPECT_EQ(parse_install_date("2024-02-29"), 1709164800000);
  EXPECT_FALSE(parse_install_date("2023-02-29"));
  EXPECT_FALSE(parse_install_date("2024-2-1"));
  EXPECT_FALSE(parse_install_date("01/02/2024"));
}

}  // namespace
}  // namespace wattprobe
