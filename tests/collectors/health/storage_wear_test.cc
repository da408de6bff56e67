#include "collectors/health/storage_wear.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>

#include "tests/support/fake_device_health.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::SysfsWriter;
using testing::TempTree;

TEST(StorageWear, ParsesTheSmartHealthLogPage) {
  std::array<uint8_t, 512> page{};
  page[0] = 0x04;  // critical warning: reliability degraded
  page[3] = 97;    // available spare
  page[5] = 12;    // percentage used
  // Power-on hours 0x0001'2345 = 74565, little endian at byte 128.
  page[128] = 0x45;
  page[129] = 0x23;
  page[130] = 0x01;
  auto h = parse_nvme_health_log(page, "nvme0");
  ASSERT_TRUE(h.ok()) << h.error().message();
  EXPECT_EQ(h->critical_warning, 0x04);
  EXPECT_EQ(h->available_spare, 97);
  EXPECT_EQ(h->percentage_used, 12);
  EXPECT_EQ(h->power_on_hours, 74565u);
}

TEST(StorageWear, HugePowerOnHoursSaturate) {
  std::array<uint8_t, 512> page{};
  page[136] = 1;  // above 2^64 hours
  EXPECT_EQ(parse_nvme_health_log(page, "nvme0")->power_on_hours, UINT64_MAX);
}

TEST(StorageWear, ShortLogPageIsMalformed) {
  std::array<uint8_t, 64> page{};
  auto h = parse_nvme_health_log(page, "nvme0");
  ASSERT_FALSE(h.ok());
  EXPECT_THAT(h.error().message(), HasSubstr("64 bytes, expected 512"));
}

TEST(StorageWear, FixtureDrivesSayWhyNoWearIsRead) {
  TempTree tree;
  testing::write_storage(SysfsWriter(tree));
  StorageWear w = read_storage_wear(tree.paths());
  ASSERT_EQ(w.drives.size(), 2u);
  EXPECT_EQ(w.drives[0].device, "nvme0");
  EXPECT_EQ(w.drives[0].model, "Fixture NVMe 1TB");
  EXPECT_FALSE(w.drives[0].nvme);
  EXPECT_THAT(w.drives[0].problem->message(), HasSubstr("not a character device"));
  EXPECT_EQ(w.drives[1].device, "sda");
  EXPECT_THAT(w.drives[1].problem->message(), HasSubstr("no wear attribute in sysfs"));
}

TEST(StorageWear, NoDrivesSaysWhere) {
  TempTree tree;
  StorageWear w = read_storage_wear(tree.paths());
  EXPECT_TRUE(w.drives.empty());
  EXPECT_THAT(w.none_reason, HasSubstr("no NVMe controller"));
}

TEST(StorageWear, RealNvmeControllerWhenTheHostHasOne) {
  StorageWear w = read_storage_wear(HostPaths{});
  bool nvme = false;
  for (const DriveWear& d : w.drives) {
    if (d.device.rfind("nvme", 0) != 0) continue;
    nvme = true;
    // Either the log was read, or the reason names the device and what refused it.
    if (!d.nvme) {
      EXPECT_THAT(d.problem->message(), HasSubstr("/dev/" + d.device));
    }
  }
  if (!nvme) GTEST_SKIP() << "this host has no NVMe controller";
}

}  // namespace
}  // namespace wattprobe
