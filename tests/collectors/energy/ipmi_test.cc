// The ipmi source through a seam that answers as FreeIPMI does: a reading, "not supported", a
// timeout, a read that hangs. No BMC in CI. Reads run on the source's own thread, so these tests
// wait for what it reports (with generous deadlines), never for a time.
#include "collectors/energy/ipmi.h"

#include <freeipmi/api/ipmi-api.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <mutex>
#include <sstream>
#include <thread>

#include "agent/tick/energy_meter.h"
#include "tests/support/temp_tree.h"

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

/// OpenIPMI's BMC simulator (Debian openipmi) with tests/support/ipmi_sim/dcmi_power.c loaded,
/// answering IPMI on a free UDP port of 127.0.0.1 for the account wattprobe / secret.
class IpmiSim {
 public:
  static std::string missing() {
    const std::filesystem::path module =
        std::string(WATTPROBE_TOOLS_DIR) + "/ipmi_sim_dcmi_power.so";
    if (!std::filesystem::exists(module))
      return "the DCMI module for ipmi_sim was not built (Debian package libopenipmi-dev)";
    for (std::string dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"})
      if (std::filesystem::exists(dir + "/ipmi_sim")) return {};
    return "no ipmi_sim (Debian package openipmi)";
  }

  IpmiSim() {
    int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::close(fd);
    std::ostringstream conf;
    conf << "name \"wattprobe\"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 " << port
         << "\n    priv_limit admin\n    allowed_auths_callback none md2 md5 straight\n"
         << "    allowed_auths_user none md2 md5 straight\n"
         << "    allowed_auths_operator none md2 md5 straight\n"
         << "    allowed_auths_admin none md2 md5 straight\n"
         << "    guid a123456789abcdefa123456789abcdef\n  endlan\n  loadlib \""
         << WATTPROBE_TOOLS_DIR << "/ipmi_sim_dcmi_power.so\" \"\"\n"
         << "user 1 true \"\" \"\" user 10 none md2 md5 straight\n"
         << "user 2 true \"wattprobe\" \"secret\" user 10 none md2 md5 straight\n";
    tree.write("lan.conf", conf.str());
    tree.write("bmc.emu",
               "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
               "mc_enable 0x20\n");
    std::filesystem::create_directories(tree.root() / "state");
    pid = ::fork();
    if (pid == 0) {
      const std::string c = (tree.root() / "lan.conf").string(),
                        f = (tree.root() / "bmc.emu").string(),
                        st = (tree.root() / "state").string();
      ::execlp("ipmi_sim", "ipmi_sim", "-c", c.c_str(), "-f", f.c_str(), "-s", st.c_str(), "-n",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~IpmiSim() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
  /// --ipmi-host and the account's files.
  IpmiOptions account(unsigned workaround_flags) const {
    tree.write("user", "wattprobe\n");
    tree.write("password", "secret\n");
    return {"127.0.0.1:" + std::to_string(port), (tree.root() / "user").string(),
            (tree.root() / "password").string(), workaround_flags};
  }

  testing::TempTree tree;
  int port = 0;
  pid_t pid = -1;
};

TEST(Ipmi, FreeIpmiReadsDcmiPowerOverTheLanFromOpenIpmisSimulator) {
  if (std::string why = IpmiSim::missing(); !why.empty()) GTEST_SKIP() << why;
  IpmiSim sim;
  // ipmi_sim binds its port a moment after it starts: a source that cannot open yet is retried.
  // The simulator hashes RMCP+ keys with the Open Session privilege (FreeIPMI's "opensesspriv").
  const unsigned flags = IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE;
  std::unique_ptr<IpmiSource> s;
  Availability a;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  do {
    s = std::make_unique<IpmiSource>(make_freeipmi_dcmi_lan_reader(sim.account(flags)), 20ms);
    a = s->probe();
    if (a.available) break;
    std::this_thread::sleep_for(200ms);
  } while (std::chrono::steady_clock::now() < deadline);
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("250 W"), std::string::npos) << a.reason;
  // Each read gets the next power (+10 W): the counter moves faster than the first reading's.
  Sample first = s->sample();
  ASSERT_EQ(first.readings.size(), 1u);
  sample_until(
      *s,
      [&](const Sample& x) {
        return !x.readings.empty() && x.readings[0].raw > first.readings[0].raw + 1000;
      },
      "the counter advances with the simulator's readings");
  EXPECT_EQ(info_label(*s, "state"), "ok");

  // The wrong password is refused at the session, and said so.
  IpmiOptions nope = sim.account(flags);
  sim.tree.write("wrong-password", "nope\n");
  nope.password_file = (sim.tree.root() / "wrong-password").string();
  IpmiSource wrong(make_freeipmi_dcmi_lan_reader(nope));
  Availability refused = wrong.probe();
  EXPECT_FALSE(refused.available);
  EXPECT_NE(refused.reason.find("password"), std::string::npos) << refused.reason;
}

}  // namespace
}  // namespace wattprobe
