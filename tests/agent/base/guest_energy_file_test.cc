#include "agent/base/guest_energy_file.h"

#include <gtest/gtest.h>

#include <string>

namespace wattprobe {
namespace {

GuestEnergyFile sample_file() {
  GuestEnergyFile f;
  f.vm = "guest1";
  f.sequence = 42;
  f.host_time_ms = 1764230000123;
  f.interval_seconds = 1;
  f.idle_attribution = "proportional";
  f.idle_included = true;
  f.grid_intensity = 210.5;
  f.pue = 1.3;
  f.domains = {{"package", 1234.5, true}, {"dram", 12.25, false}};
  return f;
}

std::string with(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(GuestEnergyFile, RoundTripsEveryField) {
  auto got = parse_guest_energy(to_json(sample_file()), "energy.json");
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ(got->version, kGuestEnergyVersion);
  EXPECT_EQ(got->vm, "guest1");
  EXPECT_EQ(got->sequence, 42u);
  EXPECT_EQ(got->host_time_ms, 1764230000123);
  EXPECT_EQ(got->idle_attribution, "proportional");
  EXPECT_TRUE(got->idle_included);
  EXPECT_EQ(got->grid_intensity, 210.5);
  EXPECT_DOUBLE_EQ(got->pue, 1.3);
  ASSERT_EQ(got->domains.size(), 2u);
  EXPECT_EQ(got->domains[0].domain, "package");
  EXPECT_DOUBLE_EQ(got->domains[0].joules, 1234.5);
  EXPECT_TRUE(got->domains[0].measured);
  EXPECT_FALSE(got->domains[1].measured);
}

TEST(GuestEnergyFile, NewerVersionIsUnsupportedAndSaysUpgrade) {
  std::string text = with(to_json(sample_file()), "\"version\": 1", "\"version\": 2");
  auto got = parse_guest_energy(text, "/mnt/host/energy.json");
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().kind, ErrorKind::unsupported);
  EXPECT_NE(got.error().message().find("/mnt/host/energy.json"), std::string::npos);
  EXPECT_NE(got.error().message().find("upgrade"), std::string::npos);
}

TEST(GuestEnergyFile, MalformedAndTruncatedFilesNameTheField) {
  const std::string good = to_json(sample_file());
  struct Case {
    std::string text;
    std::string names;
  };
  const Case cases[] = {
      {good.substr(0, good.size() / 2), "not JSON"},
      {"", "not JSON"},
      {"[]", "object"},
      {with(good, "wattprobe.guest-energy", "other"), "schema"},
      {with(good, "\"sequence\": 42", "\"sequence\": -1"), "sequence"},
      {with(good, "\"joules\": 1234.5", "\"joules\": -1"), "joules"},
      {with(good, "\"joules\": 1234.5", "\"joules\": \"1\""), "joules"},
      {with(good, "\"joules\": 1234.5", "\"joules\": 1e300"), "joules"},
      {with(good, "\"domain\": \"dram\"", "\"domain\": \"package\""), "named twice"},
      {with(good, "\"domain\": \"dram\"", "\"domain\": \"DRAM\\n\""), "domain"},
      {with(good, "\"pue\": 1.3", "\"pue\": 0.5"), "pue"},
      {with(good, "\"measured\": true", "\"measured\": 1"), "measured"},
      {with(good, "\"interval_seconds\": 1.0", "\"interval_seconds\": 0"), "interval_seconds"},
      {std::string(kGuestEnergyMaxBytes + 1, ' '), "bytes"},
  };
  for (const Case& c : cases) {
    auto got = parse_guest_energy(c.text, "energy.json");
    ASSERT_FALSE(got.ok()) << c.names;
    EXPECT_EQ(got.error().kind, ErrorKind::malformed) << c.names;
    EXPECT_NE(got.error().message().find(c.names), std::string::npos) << got.error().message();
  }
}

}  // namespace
}  // namespace wattprobe
