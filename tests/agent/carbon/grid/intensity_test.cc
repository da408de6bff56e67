#include "agent/carbon/grid/intensity.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "agent/carbon/grid/electricitymaps.h"
#include "tests/support/fake_grid_api.h"

namespace wattprobe {
namespace {

/// Answers from a script, one per fetch; the last entry repeats.
class ScriptedProvider : public GridProvider {
 public:
  explicit ScriptedProvider(std::vector<GridFetch> script) : script_(std::move(script)) {}
  std::string_view name() const override { return "scripted"; }
  GridFetch fetch(int64_t) override {
    size_t i = std::min<size_t>(calls++, script_.size() - 1);
    return script_[i];
  }
  std::atomic<size_t> calls{0};

 private:
  std::vector<GridFetch> script_;
};

GridFetch good(double v) {
  GridFetch f;
  f.reading = IntensityReading{v, "Z", "average", 0, {}, {}};
  return f;
}

GridFetch bad() {
  return GridFetch::failure("server_error", Error{ErrorKind::transient, "x", "HTTP 500"});
}

TEST(GridIntensity, StaticIsTheDefaultAndNeverAges) {
  GridIntensityOptions o;
  o.live = false;  // what the provider table says of `static`
  o.static_grams_per_kwh = 338;
  o.zone = "DE";
  GridIntensity grid(std::make_unique<StaticGridProvider>(338, "DE"), o);
  grid.start();
  auto in = grid.at(wall_ms() + 3600000);
  EXPECT_DOUBLE_EQ(in.grams_per_kwh, 338);
  EXPECT_EQ(in.signal, "static");
  EXPECT_EQ(in.zone, "DE");
  EXPECT_EQ(in.age_seconds, 0);
}

TEST(GridIntensity, KeepsLastGoodWithItsAgeThenFallsBackToStaticPastMaxAge) {
  GridIntensityOptions o;
  o.static_grams_per_kwh = 475;
  o.max_age = std::chrono::hours(1);
  GridIntensity grid(std::make_unique<ScriptedProvider>(std::vector{good(210), bad()}), o);
  const int64_t t0 = 1700000000000;
  EXPECT_EQ(grid.at(t0).signal, "fallback");  // nothing fetched yet
  grid.refresh_now(t0);
  grid.refresh_now(t0 + 600000);
  auto in = grid.at(t0 + 600000);
  EXPECT_DOUBLE_EQ(in.grams_per_kwh, 210);
  EXPECT_EQ(in.signal, "average");
  EXPECT_DOUBLE_EQ(in.age_seconds, 600);
  auto late = grid.at(t0 + 3600001);
  EXPECT_DOUBLE_EQ(late.grams_per_kwh, 475);
  EXPECT_EQ(late.signal, "fallback");
  EXPECT_DOUBLE_EQ(late.age_seconds, 3600.001) << "the age keeps growing through the fallback";
  EXPECT_EQ(grid.status().errors_by_reason["server_error"], 1u);
}

TEST(GridIntensity, RefreshThreadRetriesWithBackoffAndSwitchesBack) {
  GridIntensityOptions o;
  o.refresh = std::chrono::hours(1);  // only the backoff can bring the next fetch this soon
  o.min_backoff = std::chrono::milliseconds(10);
  auto provider = std::make_unique<ScriptedProvider>(std::vector{bad(), bad(), good(99)});
  ScriptedProvider* p = provider.get();
  GridIntensity grid(std::move(provider), o);
  grid.start();
  for (int i = 0; i < 300 && grid.at(wall_ms()).grams_per_kwh != 99; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grid.stop();
  EXPECT_DOUBLE_EQ(grid.at(wall_ms()).grams_per_kwh, 99);
  EXPECT_EQ(p->calls.load(), 3u);
  EXPECT_EQ(grid.status().errors_by_reason["server_error"], 2u);
}

TEST(GridIntensity, LogsAnOutageOnceItsExpiryAndItsEndWithoutTheKey) {
  GridIntensityOptions o;
  o.static_grams_per_kwh = 475;
  o.refresh = std::chrono::milliseconds(50);
  o.min_backoff = std::chrono::milliseconds(1);
  o.max_age = std::chrono::milliseconds(200);
  GridFetch refused = GridFetch::failure(
      "unauthorized",
      Error{ErrorKind::permission, "http://127.0.0.1:1/v3/carbon-intensity/latest", "HTTP 401"});
  auto provider = std::make_unique<ScriptedProvider>(
      std::vector{good(210), refused, refused, refused, refused, good(220)});
  ScriptedProvider* p = provider.get();
  GridIntensity grid(std::move(provider), o);
  std::vector<std::string> lines;
  std::mutex mu;
  // The first fetches come at once; the pause between the 2nd and 5th crosses the max age.
  grid.start([&](const std::string& l) {
    std::lock_guard lock(mu);
    lines.push_back(l);
    if (l.find("HTTP 401") != std::string::npos) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  for (int i = 0; i < 500 && p->calls.load() < 6; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int i = 0; i < 100 && grid.at(wall_ms()).grams_per_kwh != 220; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grid.stop();
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 3u) << ::testing::PrintToString(lines);
  EXPECT_NE(lines[0].find("grid scripted: "), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("HTTP 401"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("reason unauthorized"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("keeping the last good value 210 g/kWh"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("using the static default 475 g/kWh"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("answering again after 4 failed fetches: 220 g/kWh"), std::string::npos)
      << lines[2];
  EXPECT_EQ(grid.status().errors_by_reason["unauthorized"], 4u);
}

TEST(GridIntensity, RetryAfterHoldsOffTheNextFetch) {
  GridIntensityOptions o;
  o.refresh = std::chrono::hours(1);
  o.min_backoff = std::chrono::milliseconds(10);
  GridFetch limited =
      GridFetch::failure("rate_limited", Error{ErrorKind::transient, "x", "HTTP 429"},
                         /*retry_after_s=*/2);
  auto provider = std::make_unique<ScriptedProvider>(std::vector{limited, good(50)});
  ScriptedProvider* p = provider.get();
  GridIntensity grid(std::move(provider), o);
  grid.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(p->calls.load(), 1u) << "a 10 ms backoff must not override the server's 2 s";
  for (int i = 0; i < 400 && p->calls.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grid.stop();
  EXPECT_EQ(p->calls.load(), 2u);
  EXPECT_DOUBLE_EQ(grid.at(wall_ms()).grams_per_kwh, 50);
}

// Issue 25: a Retry-After of 999999999 s stopped fetching for good; it is held to --grid-max-age,
// past which the static default is in force anyway.
TEST(GridIntensity, RetryAfterIsCappedAtTheMaxAge) {
  GridIntensityOptions o;
  o.refresh = std::chrono::hours(1);
  o.min_backoff = std::chrono::milliseconds(10);
  o.max_age = std::chrono::milliseconds(300);
  GridFetch limited =
      GridFetch::failure("rate_limited", Error{ErrorKind::transient, "x", "HTTP 429"},
                         /*retry_after_s=*/999999999);
  auto provider = std::make_unique<ScriptedProvider>(std::vector{limited, good(50)});
  ScriptedProvider* p = provider.get();
  GridIntensity grid(std::move(provider), o);
  grid.start();
  for (int i = 0; i < 1000 && p->calls.load() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grid.stop();
  EXPECT_EQ(p->calls.load(), 2u) << "no second fetch within 10 s under a 300 ms max age";
}

// Issue 25: what a grid API answers reaches the log escaped: one line, no terminal escapes.
TEST(GridIntensity, ApiTextReachesTheLogEscaped) {
  GridIntensityOptions o;
  o.refresh = std::chrono::hours(1);
  GridFetch forged = GridFetch::failure(
      "malformed", Error{ErrorKind::malformed, "http://127.0.0.1:1/x",
                         "\"zone\" is \"DE\nwattprobe: grid ok\x1b[2J\x1b]0;owned\x07\""});
  auto provider = std::make_unique<ScriptedProvider>(std::vector{forged});
  GridIntensity grid(std::move(provider), o);
  std::vector<std::string> lines;
  std::mutex mu;
  grid.start([&](const std::string& l) {
    std::lock_guard lock(mu);
    lines.push_back(l);
  });
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu);
      if (!lines.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grid.stop();
  std::lock_guard lock(mu);
  ASSERT_EQ(lines.size(), 1u);
  const std::string& l = lines[0];
  EXPECT_EQ(l.find('\n'), std::string::npos) << l;
  for (char c : l) EXPECT_FALSE(static_cast<unsigned char>(c) < 0x20) << l;
  EXPECT_NE(l.find("DE\\nwattprobe: grid ok\\x1b[2J"), std::string::npos) << l;
  EXPECT_EQ(grid.status().last_error.find('\x1b'), std::string::npos);
}

TEST(GridIntensity, TlsRefusedKeepsTheAgentOnStatic) {
  testing::FakeGridApi tls(/*https=*/true);
  ASSERT_TRUE(tls.running());
  GridApiOptions e;
  e.base_url = tls.base_url();
  e.zone = "DE";
  e.secret = testing::FakeGridApi::kToken;
  e.http.total_timeout_s = 5;
  GridIntensityOptions o;
  o.static_grams_per_kwh = 475;
  GridIntensity grid(std::make_unique<ElectricityMapsProvider>(e), o);
  grid.refresh_now(wall_ms());
  auto st = grid.status();
  EXPECT_EQ(st.errors_by_reason["tls"], 1u);
  EXPECT_NE(st.last_error.find("TLS refused"), std::string::npos) << st.last_error;
  EXPECT_EQ(st.last_error.find("SECRET"), std::string::npos);
  std::cout << "[bad answer] tls -> reason=tls: " << st.last_error << "\n";
  EXPECT_DOUBLE_EQ(grid.at(wall_ms()).grams_per_kwh, 475);
  EXPECT_EQ(grid.at(wall_ms()).signal, "fallback");
}

TEST(GridIntensity, ParsesProviderTimesStrictly) {
  EXPECT_EQ(parse_utc_time("2019-05-21T00:00:00.000Z"), 1558396800000);
  EXPECT_EQ(parse_utc_time("2018-01-20T12:00Z"), 1516449600000);
  EXPECT_EQ(parse_utc_time("2024-01-01T00:05:00+00:00"), 1704067500000);
  EXPECT_FALSE(parse_utc_time("2024-01-01T00:05:00+02:00"));
  EXPECT_FALSE(parse_utc_time("2024-13-01T00:00Z"));
  EXPECT_FALSE(parse_utc_time("yesterday"));
}

}  // namespace
}  // namespace wattprobe
