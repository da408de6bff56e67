// The ipmi source through a seam that answers as FreeIPMI does: a reading, "not supported", a
// timeout. No BMC in CI.
#include "collectors/energy/ipmi.h"

#include <gtest/gtest.h>

#include <deque>

namespace wattprobe {
namespace {

class FakeDcmi : public DcmiReader {
 public:
  std::deque<Result<DcmiPowerReading>> answers;
  Result<bool> opened = true;
  Result<bool> open() override { return opened; }
  Result<DcmiPowerReading> read() override {
    if (answers.empty()) return DcmiPowerReading{250, true};
    auto a = answers.front();
    answers.pop_front();
    return a;
  }
};

Error timeout() {
  return Error{ErrorKind::transient, "ipmi", "DCMI Get Power Reading: driver timeout"};
}

TEST(Ipmi, AReadingIsPlatformPowerIntegratedPerTick) {
  auto fake = std::make_unique<FakeDcmi>();
  fake->answers = {DcmiPowerReading{310, true}, DcmiPowerReading{320, true}};
  IpmiSource s(std::move(fake));
  Availability a = s.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("310 W"), std::string::npos);
  EXPECT_NE(a.reason.find("integrated power"), std::string::npos);
  Sample sm = s.sample();
  ASSERT_EQ(sm.readings.size(), 1u);
  EXPECT_EQ(sm.readings[0].domain, "platform");
  EXPECT_EQ(sm.readings[0].kind, ReadingKind::power_gauge);
  EXPECT_DOUBLE_EQ(sm.readings[0].watts, 320);
  std::vector<Family> f;
  s.append_families(f);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].name, "wattprobe_ipmi_info");
}

TEST(Ipmi, ABmcWithoutDcmiPowerIsNotAvailableAndSaysSo) {
  auto fake = std::make_unique<FakeDcmi>();
  fake->answers = {Error{ErrorKind::unsupported, "ipmi",
                         "DCMI Get Power Reading: command invalid or unsupported (no DCMI power "
                         "reading)"}};
  IpmiSource s(std::move(fake));
  Availability a = s.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("unsupported"), std::string::npos) << a.reason;
}

TEST(Ipmi, NoDeviceIsNotAvailable) {
  auto fake = std::make_unique<FakeDcmi>();
  fake->opened = Error{ErrorKind::absent, "/dev/ipmi0", "no in-band IPMI device"};
  IpmiSource s(std::move(fake));
  EXPECT_FALSE(s.probe().available);
  EXPECT_TRUE(s.sample().readings.empty());
}

TEST(Ipmi, TimeoutsGiveNoReadingAndThreeInARowAreStalled) {
  auto fake = std::make_unique<FakeDcmi>();
  fake->answers = {DcmiPowerReading{300, true}, timeout(), timeout(), timeout(),
                   DcmiPowerReading{305, true}};
  IpmiSource s(std::move(fake));
  ASSERT_TRUE(s.probe().available);
  for (int i = 0; i < 3; ++i) {
    Sample sm = s.sample();
    EXPECT_TRUE(sm.readings.empty());
    ASSERT_EQ(sm.errors.size(), 1u);
    EXPECT_EQ(sm.errors[0].kind, ErrorKind::transient);
  }
  std::vector<Family> f;
  s.append_families(f);
  auto state = [&] {
    for (const auto& [k, v] : f[0].series[0].labels)
      if (k == "state") return v;
    return std::string();
  };
  EXPECT_EQ(state(), "stalled");
  EXPECT_EQ(s.sample().readings.size(), 1u);
  f.clear();
  s.append_families(f);
  EXPECT_EQ(state(), "ok");
}

}  // namespace
}  // namespace wattprobe
