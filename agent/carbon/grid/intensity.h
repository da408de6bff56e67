#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/base/http_client.h"
#include "agent/base/result.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

/// Any intensity above this is rejected as absurd: the dirtiest grids (lignite, oil) stay under
/// about 1200 g/kWh, so 5000 leaves room for any real marginal signal and none for a unit mix-up.
inline constexpr double kMaxGramsPerKwh = 5000;

struct IntensityPoint {
  int64_t time_ms = 0;  // start of the period the value applies to
  double grams_per_kwh = 0;
  /// The carbon-free share of the supply, 0 to 100, where the source publishes it.
  std::optional<double> cfe_percent = std::nullopt;
};

struct IntensityReading {
  double grams_per_kwh = 0;
  std::string zone;
  /// What the number is: "average" (location-based average, the one SCI asks for), "marginal"
  /// (WattTime MOER), "static" (configured), "fallback" (static used because no good value).
  std::string signal;
  int64_t time_ms = 0;  // when the value applies, as the provider says; 0 if unknown
  std::vector<IntensityPoint> forecast;
  /// True for a schedule (the file provider): the value in force at a tick is the last point of
  /// `schedule` at or before the tick, so a schedule needs no refresh to move on.
  std::vector<IntensityPoint> schedule;
  /// The facility's PUE where the provider states it (`host`: the VM host's own --pue), used
  /// instead of --pue while this reading is in force, so a guest's grams are its host's.
  std::optional<double> pue = std::nullopt;
  /// The carbon-free share of the supply now, 0 to 100, where the provider publishes it (a
  /// schedule carries it per point instead).
  std::optional<double> cfe_percent = std::nullopt;
};

/// One fetch. On failure `reason` names it in the words of
/// wattprobe_agent_grid_fetch_errors_total{reason}: unauthorized, rate_limited, server_error,
/// http_error, timeout, connect, tls, too_large, transport, malformed, out_of_range, absent.
struct GridFetch {
  std::optional<IntensityReading> reading;
  std::string reason;
  Error error;
  int retry_after_s = -1;
  /// Problems that did not stop the fetch (a malformed row in a schedule, a failed forecast
  /// call); each is counted with its reason.
  std::vector<std::pair<std::string, Error>> warnings;

  static GridFetch failure(std::string reason, Error error, int retry_after_s = -1) {
    GridFetch f;
    f.reason = std::move(reason);
    f.error = std::move(error);
    f.retry_after_s = retry_after_s;
    return f;
  }
  /// An answer its API's documentation does not allow, refused by a provider's parser.
  static GridFetch malformed(const std::string& url, std::string detail);
};

/// The error of such an answer: malformed, naming the URL (its secrets redacted) and what was
/// wrong. Every provider's parsers use it, so their messages read alike.
Error malformed_answer(const std::string& url, std::string detail);

/// What an API provider is made from, the same for each: the base URL (the provider table's
/// public API unless --grid-url says otherwise), the zone (an Electricity Maps zone, a WattTime
/// region), the login and key, and the HTTP client's limits. Each provider reads what it needs.
struct GridApiOptions {
  std::string base_url;
  std::string zone;
  std::string username;  // WattTime's login
  std::string secret;    // the API key or password; never logged, exported or shown
  HttpOptions http;
};

/// A source of grid carbon intensity (agent/grid_<name>.{h,cc}). fetch() may block on the
/// network; it runs on GridIntensity's refresh thread, never on the sampling thread.
class GridProvider {
 public:
  virtual ~GridProvider() = default;
  virtual std::string_view name() const = 0;
  virtual GridFetch fetch(int64_t now_ms) = 0;
};

class StaticGridProvider : public GridProvider {
 public:
  StaticGridProvider(double grams_per_kwh, std::string zone)
      : grams_per_kwh_(grams_per_kwh), zone_(std::move(zone)) {}
  std::string_view name() const override { return "static"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  double grams_per_kwh_;
  std::string zone_;
};

/// Helpers for the API providers.
/// Maps a non-2xx status to a fetch failure; the body is never quoted (it may echo a token).
GridFetch http_failure(const HttpGetResult& response, const std::string& url);
/// Strict ISO 8601 UTC time: YYYY-MM-DDTHH:MM[:SS[.fff]](Z|+00:00). nullopt if anything else.
std::optional<int64_t> parse_utc_time(std::string_view text);
/// An intensity from a document: finite, 0 ≤ v ≤ kMaxGramsPerKwh, else why not.
std::optional<std::string> check_intensity(double grams_per_kwh);
/// A carbon-free share: finite, 0 to 100 %, else why not.
std::optional<std::string> check_cfe_percent(double percent);
/// %g: short numbers for error messages.
std::string format_number(double v);

/// The most forecast points kept from one answer: 48 h of 5-minute points (WattTime's 24 h
/// at 5 min, Electricity Maps' 72 h hourly and the UK's 48 h half-hourly fit), so a huge
/// answer cannot become thousands of series.
inline constexpr std::size_t kMaxForecastPoints = 576;
/// A zone becomes a label: 1 to 64 of [A-Za-z0-9_.-] (Electricity Maps "US-CAL-CISO", WattTime
/// "CAISO_NORTH", "GB"); empty is allowed (the configured zone is used). Else why not.
std::optional<std::string> check_zone(std::string_view zone);
/// What every answer goes through before it is used: its zone checked (a bad one fails the
/// fetch as malformed), its forecast sorted by time, later points in the same UTC minute as
/// an earlier one dropped, and the points past kMaxForecastPoints dropped, each with a warning.
GridFetch bound_fetch(GridFetch fetch);

struct GridIntensityOptions {
  /// False for a provider whose value never changes (`static`): no refresh thread, no age, and
  /// its value is reported with signal "static" rather than as a fallback.
  bool live = true;
  double static_grams_per_kwh = 475;
  std::string zone;
  std::chrono::milliseconds refresh{std::chrono::minutes(15)};
  /// After this long without a good fetch the last good value is dropped for the static default.
  std::chrono::milliseconds max_age{std::chrono::hours(24)};
  std::chrono::milliseconds min_backoff{std::chrono::seconds(10)};
};

/// The intensity in force, with the fallback chain live → last good (with its age) → static.
/// The refresh thread calls the provider; the sampling thread reads under a mutex, so it never
/// waits on the network.
class GridIntensity {
 public:
  GridIntensity(std::unique_ptr<GridProvider> provider, GridIntensityOptions options);
  ~GridIntensity();
  GridIntensity(const GridIntensity&) = delete;
  GridIntensity& operator=(const GridIntensity&) = delete;

  /// Starts the refresh thread, which fetches at once and then every refresh; the static
  /// provider needs no thread. Until the first good answer the static default is in force
  /// (signal "fallback"), so a slow or hung API never delays the agent's start. The thread
  /// parses network answers, so the agent starts it only after dropping privileges.
  /// `log` is where the refresh thread says what changed: a failure (once per reason, never the
  /// key), a recovery, and the switch to the static default after max_age.
  void start(std::function<void(const std::string&)> log = {});
  void stop();
  /// One fetch now, on the caller's thread: for tests and `doctor`.
  void refresh_now(int64_t now_ms);

  struct InForce {
    double grams_per_kwh = 0;
    std::string signal;
    std::string zone;
    double age_seconds = 0;     // since the last good fetch; 0 for static
    std::optional<double> pue;  // the reading's own PUE, where its provider states one
    /// The carbon-free share in force, 0 to 100; none where the provider publishes none, and
    /// none on the static default (no guess).
    std::optional<double> cfe_percent;
  };
  /// The value to use for energy at `time_ms`. Cheap; takes the mutex only.
  InForce at(int64_t time_ms) const;

  struct Status {
    std::string provider;
    std::optional<IntensityReading> last_good;
    int64_t last_good_ms = 0;  // when it was fetched
    int64_t last_attempt_ms = 0;
    std::string last_error;  // message of the last failure, empty after a success
    std::map<std::string, uint64_t> errors_by_reason;
    uint64_t fetches = 0;
  };
  Status status() const;
  std::string_view provider_name() const { return provider_->name(); }
  bool live() const { return options_.live; }

  void append_families(std::vector<Family>& out, int64_t now_ms) const;

 private:
  void run();
  std::chrono::milliseconds apply(GridFetch fetch, int64_t now_ms);  // returns the next wait
  void log(const std::string& line) const;

  std::unique_ptr<GridProvider> provider_;
  GridIntensityOptions options_;
  std::function<void(const std::string&)> log_;  // set before the thread starts, then read-only
  std::mutex fetch_mu_;  // one fetch at a time: the provider keeps a token and a connection
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  Status status_;
  int consecutive_failures_ = 0;
  std::string logged_reason_;  // the failure last logged, so an outage is one line, not many
  bool logged_expiry_ = false;
  std::chrono::milliseconds next_wait_{0};  // from the last apply(), so start() honours it
  std::thread thread_;
};

int64_t wall_ms();

}  // namespace wattprobe

namespace wattprobe {

/// An API key from a file (first line, trimmed) or else an environment variable. Errors name the
/// file or the variable, never the value.
Result<std::string> load_secret(const std::string& file, const std::string& env_name);

}  // namespace wattprobe
