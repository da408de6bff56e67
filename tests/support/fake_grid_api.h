#pragma once

#include <sys/types.h>

#include <string>

namespace wattprobe::testing {

/// Runs tests/support/fake_grid_api.py (a Python stdlib HTTP server on 127.0.0.1, port 0) for
/// the life of the object. Credentials it accepts are below; modes are listed in the script.
class FakeGridApi {
 public:
  static constexpr const char* kToken = "em-test-token-SECRET";
  static constexpr const char* kWattTimeUser = "wt-user";
  static constexpr const char* kWattTimePassword = "wt-password-SECRET";

  explicit FakeGridApi(bool https = false);
  ~FakeGridApi();
  FakeGridApi(const FakeGridApi&) = delete;
  FakeGridApi& operator=(const FakeGridApi&) = delete;

  bool running() const { return port_ > 0; }
  int port() const { return port_; }
  /// "http://127.0.0.1:<port>" (https with the TLS mode).
  std::string base_url() const;
  void set_mode(const std::string& mode) const;
  void set_value(double grams_per_kwh) const;
  /// Requests served for a path so far.
  int hits(const std::string& path) const;

 private:
  std::string control(const std::string& path) const;
  pid_t pid_ = -1;
  int port_ = 0;
  bool https_ = false;
};

}  // namespace wattprobe::testing

#include <vector>

#include "agent/carbon/grid/intensity.h"

namespace wattprobe::testing {

struct BadAnswer {
  std::string mode;    // fake server mode
  std::string reason;  // expected wattprobe_agent_grid_fetch_errors_total reason
  std::string words;   // expected somewhere in the error message
};

/// The bad answers every API provider must survive, with the reason each is counted under.
std::vector<BadAnswer> standard_bad_answers();

/// For each bad answer: switch the server to it, refresh, and check that the agent keeps the last
/// good value (`good` g/kWh, signal unchanged, with an age), counts the error by reason and shows
/// a message; then that it switches back to a fresh value when the server recovers. Prints each
/// message a user would see. Returns every message and exported label/value text seen, so the
/// caller can check no secret leaked.
std::string check_bad_answers(const FakeGridApi& api, GridIntensity& grid, double good,
                              const std::vector<BadAnswer>& answers);

/// All label values and help texts of families, flattened, for leak checks.
std::string flatten(const std::vector<Family>& families);

}  // namespace wattprobe::testing
