// The ipmi source through a seam that answers as FreeIPMI does: a reading, "not supported", a
// timeout, a read that hangs. No BMC in CI. Reads run on the source's own thread, so these tests
// wait for what it reports (with generous deadlines), never for a time.
#include "collectors/energy/ipmi.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "agent/tick/energy_meter.h"

namespace wattprobe {
namespace {

using namespace std::chrono_literals;

/// Answers in order, then `steady` for ever; `hang()` makes every read wait until `release()`.
class FakeDcmi : public DcmiReader {
 public:
  struct Script {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<Result<DcmiPowerReading>> answers;
    DcmiPowerReading steady{250, true};
    bool hung = false;
    int reads = 0;
  };
  explicit FakeDcmi(std::shared_ptr<Script> s) : s_(std::move(s)) {}
  Result<bool> opened = true;
  Result<bool> open() override { return opened; }
  Result<DcmiPowerReading> read() override {
    std::unique_lock<std::mutex> lock(s_->mu);
    ++s_->reads;
    // Bounded, so a failing test ends: a BMC that hangs past the test's own deadlines.
    s_->cv.wait_for(lock, 60s, [&] { return !s_->hung; });
    if (s_->answers.empty()) return s_->steady;
    auto a = s_->answers.front();
    s_->answers.pop_front();
    return a;
  }

 private:
  std::shared_ptr<FakeDcmi::Script> s_;
};

std::shared_ptr<FakeDcmi::Script> script(std::deque<Result<DcmiPowerReading>> answers = {}) {
  auto s = std::make_shared<FakeDcmi::Script>();
  s->answers = std::move(answers);
  return s;
}

void hang(FakeDcmi::Script& s, bool on) {
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.hung = on;
  }
  s.cv.notify_all();
}

Error timeout() {
  return Error{ErrorKind::transient, "ipmi", "DCMI Get Power Reading: driver timeout"};
}

std::string info_label(const IpmiSource& s, const std::string& name) {
  std::vector<Family> f;
  s.append_families(f);
  if (f.empty() || f[0].series.empty()) return "(no wattprobe_ipmi_info)";
  for (const auto& [k, v] : f[0].series[0].labels)
    if (k == name) return v;
  return "";
}

/// Samples, as ticks do, until `done` holds for a sample; the samples taken.
template <typename Done>
std::vector<Sample> sample_until(IpmiSource& s, Done done, const char* what) {
  std::vector<Sample> out;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  do {
    out.push_back(s.sample());
    if (done(out.back())) return out;
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ADD_FAILURE() << "never: " << what;
  return out;
}

TEST(Ipmi, AReadingIsPlatformPowerHeldUntilTheNextAndIntegrated) {
  auto sc = script({DcmiPowerReading{310, true}});
  auto fake = std::make_unique<FakeDcmi>(sc);
  IpmiSource s(std::move(fake), 10ms);
  Availability a = s.probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("310 W"), std::string::npos);
  EXPECT_NE(a.reason.find("integrated power"), std::string::npos);
  Sample first = s.sample();
  ASSERT_EQ(first.readings.size(), 1u);
  const Reading& r = first.readings[0];
  EXPECT_EQ(r.domain, "platform");
  EXPECT_EQ(r.kind, ReadingKind::energy_counter);
  EXPECT_FALSE(r.known_stalled);
  // The counter moves with the held power while the thread reads on.
  auto later = sample_until(
      s, [&](const Sample& x) { return !x.readings.empty() && x.readings[0].raw > r.raw + 100; },
      "the counter advances");
  EXPECT_EQ(info_label(s, "integrated"), "true");
  EXPECT_EQ(info_label(s, "state"), "ok");
}

TEST(Ipmi, ABmcWithoutDcmiPowerIsNotAvailableAndSaysSo) {
  auto sc = script({Error{ErrorKind::unsupported, "ipmi",
                          "DCMI Get Power Reading: command invalid or unsupported (no DCMI power "
                          "reading)"}});
  IpmiSource s(std::make_unique<FakeDcmi>(sc));
  Availability a = s.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("unsupported"), std::string::npos) << a.reason;
}

TEST(Ipmi, NoDeviceIsNotAvailable) {
  auto fake = std::make_unique<FakeDcmi>(script());
  fake->opened = Error{ErrorKind::absent, "/dev/ipmi0", "no in-band IPMI device"};
  IpmiSource s(std::move(fake));
  EXPECT_FALSE(s.probe().available);
  EXPECT_TRUE(s.sample().readings.empty());
}

TEST(Ipmi, ThreeFailedReadsInARowAreStalledAndCountedThenItRecovers) {
  auto sc = script({DcmiPowerReading{300, true}, timeout(), timeout(), timeout()});
  IpmiSource s(std::make_unique<FakeDcmi>(sc), 10ms);
  ASSERT_TRUE(s.probe().available);
  std::size_t errors = 0;
  auto samples = sample_until(
      s,
      [&](const Sample& x) {
        errors += x.errors.size();
        return !x.readings.empty() && x.readings[0].known_stalled;
      },
      "stalled after 3 timeouts");
  EXPECT_GE(errors, 3u);
  EXPECT_EQ(info_label(s, "state"), "stalled");
  EXPECT_NE(info_label(s, "reason").find("3 DCMI power reads failed"), std::string::npos)
      << info_label(s, "reason");
  sample_until(
      s, [](const Sample& x) { return !x.readings.empty() && !x.readings[0].known_stalled; },
      "recovered with the next good read");
  EXPECT_EQ(info_label(s, "state"), "ok");
}

/// A platform counter standing by, as another BMC path or hwmon's power meter would.
class StandbyPlatform : public EnergySource {
 public:
  std::string_view name() const override { return "standby_wall"; }
  Availability probe() override { return {true, "test", ""}; }
  Sample sample() override {
    Sample s;
    Reading r;
    r.domain = "platform";
    r.key = "standby";
    r.raw = raw_ += 100'000'000;  // 100 J a tick
    s.readings.push_back(r);
    return s;
  }

 private:
  uint64_t raw_ = 0;
};

TEST(Ipmi, AReadThatHangsNeverHoldsATickAndTheNextSourceStandsIn) {
  auto sc = script();
  auto source = std::make_unique<IpmiSource>(std::make_unique<FakeDcmi>(sc), 10ms);
  IpmiSource* ipmi = source.get();
  ASSERT_TRUE(ipmi->probe().available);
  std::vector<std::unique_ptr<EnergySource>> chosen, standby;
  chosen.push_back(std::move(source));
  standby.push_back(std::make_unique<StandbyPlatform>());
  EnergyMeter meter(std::move(chosen), std::move(standby));
  auto platform_source = [](const NodeEnergy& e) {
    for (const DomainEnergy& d : e.domains)
      if (d.domain == "platform") return d.source;
    return std::string("(none)");
  };
  meter.tick(0.1);
  EXPECT_EQ(platform_source(meter.tick(0.1)), "ipmi");

  // The BMC stops answering: the read in flight never returns while the ticks go on.
  hang(*sc, true);
  int ticks = 0;
  std::string from;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    from = platform_source(meter.tick(0.01));
    ++ticks;
    if (from == "standby_wall") break;
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(from, "standby_wall") << "after " << ticks << " ticks";
  EXPECT_EQ(info_label(*ipmi, "state"), "stalled");
  EXPECT_NE(info_label(*ipmi, "reason").find("has not answered"), std::string::npos)
      << info_label(*ipmi, "reason");
  {
    std::lock_guard<std::mutex> lock(sc->mu);
    EXPECT_GE(sc->reads, 2) << "the hanging read was the thread's, not a tick's";
  }

  // It answers again: ipmi is the platform figure once more.
  hang(*sc, false);
  sample_until(
      *ipmi, [](const Sample& x) { return !x.readings.empty() && !x.readings[0].known_stalled; },
      "answers again");
  EXPECT_EQ(info_label(*ipmi, "state"), "ok");
}

}  // namespace
}  // namespace wattprobe
