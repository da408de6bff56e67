#include "tests/support/fake_grid_api.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/base/http_client.h"

namespace wattprobe::testing {

namespace {
std::string script_path() {
  return (std::filesystem::path(__FILE__).parent_path() / "fake_grid_api.py").string();
}
}  // namespace

FakeGridApi::FakeGridApi(bool https) : https_(https) {
  int fds[2];
  if (::pipe(fds) != 0) return;
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::string script = script_path();
    if (https) {
      ::execlp("python3", "python3", script.c_str(), "--https", nullptr);
    } else {
      ::execlp("python3", "python3", script.c_str(), nullptr);
    }
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string line;
  pollfd p{fds[0], POLLIN, 0};
  while (line.find('\n') == std::string::npos && ::poll(&p, 1, 10000) > 0) {
    char buf[64];
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  port_ = std::atoi(line.c_str());
}

FakeGridApi::~FakeGridApi() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::string FakeGridApi::base_url() const {
  return std::string(https_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

std::string FakeGridApi::control(const std::string& path) const {
  // The control channel is plain HTTP only; in the TLS mode the tests need no control.
  HttpClient client;
  HttpGetResult r = client.get(HttpGetRequest{base_url() + path, {}, {}, {}});
  return r.body;
}

void FakeGridApi::set_mode(const std::string& mode) const { control("/__mode/" + mode); }
void FakeGridApi::set_value(double v) const { control("/__value/" + std::to_string(v)); }

int FakeGridApi::hits(const std::string& path) const {
  auto j = nlohmann::json::parse(control("/__stats"), nullptr, false);
  if (!j.is_object() || !j.contains(path) || !j[path].is_number_integer()) return 0;
  return j[path].get<int>();
}

}  // namespace wattprobe::testing

#include <gtest/gtest.h>

#include <iostream>

namespace wattprobe::testing {

std::vector<BadAnswer> standard_bad_answers() {
  return {
      {"malformed_json", "malformed", "not JSON"},
      {"nan", "malformed", "not JSON"},
      {"wrong_types", "malformed", "expected"},
      {"missing_fields", "malformed", "missing"},
      {"negative", "out_of_range", "negative"},
      {"absurd", "out_of_range", "plausibility limit"},
      {"http401", "unauthorized", "HTTP 401"},
      {"http429", "rate_limited", "retry after 120 s"},
      {"http500", "server_error", "HTTP 500"},
      {"hang", "timeout", "no complete answer"},
      {"huge", "too_large", "cap"},
      {"huge_chunked", "too_large", "cap"},
  };
}

std::string flatten(const std::vector<Family>& families) {
  std::string out;
  for (const auto& f : families) {
    out += f.name + " " + f.help + "\n";
    for (const auto& s : f.series) {
      for (const auto& [k, v] : s.labels) out += k + "=" + v + " ";
      out += std::to_string(s.value) + "\n";
    }
  }
  return out;
}

std::string check_bad_answers(const FakeGridApi& api, GridIntensity& grid, double good,
                              const std::vector<BadAnswer>& answers) {
  std::string seen;
  api.set_mode("ok");
  api.set_value(good);  // WattTime's lbs/MWh is rounded to 6 places, hence 1e-6 below
  grid.refresh_now(wall_ms());
  auto first = grid.at(wall_ms());
  EXPECT_NEAR(first.grams_per_kwh, good, good * 1e-6);
  const std::string signal = first.signal;
  EXPECT_NE(signal, "fallback");
  for (const auto& bad : answers) {
    SCOPED_TRACE("mode " + bad.mode);
    uint64_t before = grid.status().errors_by_reason[bad.reason];
    api.set_mode(bad.mode);
    grid.refresh_now(wall_ms());
    auto st = grid.status();
    EXPECT_EQ(st.errors_by_reason[bad.reason], before + 1);
    EXPECT_NE(st.last_error.find(bad.words), std::string::npos) << st.last_error;
    std::cout << "[bad answer] " << bad.mode << " -> reason=" << bad.reason << ": " << st.last_error
              << "\n";
    auto now = grid.at(wall_ms());
    EXPECT_NEAR(now.grams_per_kwh, good, good * 1e-6);
    EXPECT_EQ(now.signal, signal);
    EXPECT_GE(now.age_seconds, 0);
    std::vector<Family> fams;
    grid.append_families(fams, wall_ms());
    seen += st.last_error + "\n" + flatten(fams);
  }
  // The server recovers with a new value: the agent takes it and the age restarts.
  api.set_mode("ok");
  api.set_value(good + 100);
  grid.refresh_now(wall_ms());
  auto back = grid.at(wall_ms());
  EXPECT_NEAR(back.grams_per_kwh, good + 100, good * 1e-6);
  EXPECT_LT(back.age_seconds, 5);
  EXPECT_EQ(grid.status().last_error, "");
  return seen;
}

}  // namespace wattprobe::testing
