#include "agent/carbon/grid/intensity.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "agent/base/secret_file.h"
#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

// Minutes since the epoch, rounding down before 1970 too.
int64_t floor_minute(int64_t ms) { return ms / 60000 - (ms % 60000 < 0 ? 1 : 0); }

}  // namespace

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

GridFetch StaticGridProvider::fetch(int64_t now_ms) {
  GridFetch f;
  IntensityReading r;
  r.grams_per_kwh = grams_per_kwh_;
  r.zone = zone_;
  r.signal = "static";
  r.time_ms = now_ms;
  f.reading = std::move(r);
  return f;
}

GridFetch http_failure(const HttpGetResult& response, const std::string& url) {
  std::string where = redact_url(url);
  if (!response.ok()) {
    return GridFetch::failure(response.reason, Error{ErrorKind::transient, where, response.detail});
  }
  long s = response.status;
  std::string code = "HTTP " + std::to_string(s);
  if (s == 401 || s == 403) {
    return GridFetch::failure(
        "unauthorized",
        Error{ErrorKind::permission, where,
              code + ": the API refused the credentials (check the configured key)"});
  }
  if (s == 429) {
    std::string after = response.retry_after_s >= 0
                            ? ", retry after " + std::to_string(response.retry_after_s) + " s"
                            : "";
    return GridFetch::failure("rate_limited",
                              Error{ErrorKind::transient, where, code + ": rate limited" + after},
                              response.retry_after_s);
  }
  if (s >= 500) {
    return GridFetch::failure("server_error",
                              Error{ErrorKind::transient, where, code + ": server error"},
                              response.retry_after_s);
  }
  return GridFetch::failure("http_error",
                            Error{ErrorKind::unsupported, where, code + ": unexpected status"});
}

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::optional<std::string> check_intensity(double v) {
  if (!std::isfinite(v)) return "is not a finite number";
  if (v < 0) return format_number(v) + " g/kWh is negative";
  if (v > kMaxGramsPerKwh) {
    return format_number(v) + " g/kWh is above the " + format_number(kMaxGramsPerKwh) +
           " g/kWh plausibility limit";
  }
  return std::nullopt;
}

std::optional<std::string> check_cfe_percent(double v) {
  if (!std::isfinite(v)) return "is not a finite number";
  if (v < 0 || v > 100) return format_number(v) + " % is outside 0 to 100";
  return std::nullopt;
}

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> parse_utc_time(std::string_view s) {
  int y, mo, d, h, mi, sec = 0, ms = 0;
  if (!digits(s, 0, 4, y) || s.size() < 16 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != ' ') || !digits(s, 11, 2, h) ||
      s[13] != ':' || !digits(s, 14, 2, mi)) {
    return std::nullopt;
  }
  size_t pos = 16;
  if (pos < s.size() && s[pos] == ':') {
    if (!digits(s, pos + 1, 2, sec)) return std::nullopt;
    pos += 3;
    if (pos < s.size() && s[pos] == '.') {
      size_t start = ++pos;
      int scale = 100;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        ms += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return std::nullopt;
    }
  }
  std::string_view zone = s.substr(pos);
  if (zone != "Z" && zone != "+00:00" && zone != "+0000") return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  return static_cast<int64_t>(t) * 1000 + ms;
}

GridIntensity::GridIntensity(std::unique_ptr<GridProvider> provider, GridIntensityOptions options)
    : provider_(std::move(provider)), options_(std::move(options)) {
  status_.provider = std::string(provider_->name());
}

GridIntensity::~GridIntensity() { stop(); }

void GridIntensity::start(std::function<void(const std::string&)> log) {
  log_ = std::move(log);
  if (!options_.live) {
    refresh_now(wall_ms());
    return;
  }
  if (thread_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
    next_wait_ = std::chrono::milliseconds(0);
  }
  thread_ = std::thread([this] { run(); });
}

void GridIntensity::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GridIntensity::refresh_now(int64_t now_ms) {
  std::lock_guard fetch_lock(fetch_mu_);
  apply(provider_->fetch(now_ms), now_ms);
}

void GridIntensity::run() {
  std::chrono::milliseconds wait;
  {
    std::lock_guard lock(mu_);
    wait = next_wait_;
  }
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, wait, [this] { return stopping_; })) return;
    }
    std::lock_guard fetch_lock(fetch_mu_);
    int64_t now = wall_ms();
    wait = apply(provider_->fetch(now), now);
  }
}

void GridIntensity::log(const std::string& line) const {
  // Errors quote what the API answered: one line, no terminal escapes, whatever it sent.
  if (log_) log_("grid " + std::string(provider_->name()) + ": " + escape_for_log(line));
}

std::optional<std::string> check_zone(std::string_view zone) {
  if (zone.size() > 64) return std::to_string(zone.size()) + " characters, more than 64";
  for (char c : zone) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return quote_for_error(zone.substr(0, 80)) + " has a character outside [A-Za-z0-9_.-]";
    }
  }
  return std::nullopt;
}

GridFetch bound_fetch(GridFetch fetch) {
  if (!fetch.reading) return fetch;
  if (auto why = check_zone(fetch.reading->zone)) {
    return GridFetch::failure("malformed", Error{ErrorKind::malformed, "zone", *why});
  }
  auto& points = fetch.reading->forecast;
  std::stable_sort(points.begin(), points.end(),
                   [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
  std::size_t kept = 0, same_minute = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    if (kept > 0 && floor_minute(points[i].time_ms) == floor_minute(points[kept - 1].time_ms)) {
      ++same_minute;
      continue;
    }
    points[kept++] = points[i];
  }
  points.resize(kept);
  if (same_minute > 0) {
    fetch.warnings.push_back(
        {"malformed", Error{ErrorKind::malformed, "forecast",
                            std::to_string(same_minute) +
                                " points in the same minute as an earlier one, dropped"}});
  }
  if (points.size() > kMaxForecastPoints) {
    fetch.warnings.push_back(
        {"too_large", Error{ErrorKind::malformed, "forecast",
                            std::to_string(points.size()) + " points, kept the first " +
                                std::to_string(kMaxForecastPoints)}});
    points.resize(kMaxForecastPoints);
  }
  return fetch;
}

std::chrono::milliseconds GridIntensity::apply(GridFetch fetch, int64_t now_ms) {
  fetch = bound_fetch(std::move(fetch));
  std::lock_guard lock(mu_);
  ++status_.fetches;
  status_.last_attempt_ms = now_ms;
  for (const auto& [reason, error] : fetch.warnings) ++status_.errors_by_reason[reason];
  if (fetch.reading) {
    if (!logged_reason_.empty() || logged_expiry_) {
      log("answering again after " + std::to_string(consecutive_failures_) +
          " failed fetches: " + format_number(fetch.reading->grams_per_kwh) + " g/kWh");
    }
    logged_reason_.clear();
    logged_expiry_ = false;
    status_.last_good = std::move(fetch.reading);
    status_.last_good_ms = now_ms;
    status_.last_error =
        fetch.warnings.empty() ? "" : escape_for_log(fetch.warnings.front().second.message());
    consecutive_failures_ = 0;
    next_wait_ = options_.refresh;
    return next_wait_;
  }
  ++status_.errors_by_reason[fetch.reason];
  status_.last_error = escape_for_log(fetch.error.message());
  const int64_t max_age_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_age).count();
  const bool expired = !status_.last_good || now_ms - status_.last_good_ms > max_age_ms;
  if (fetch.reason != logged_reason_) {
    // The error names the URL without its query or credentials; a key never reaches an Error.
    std::string keeping =
        expired
            ? "using the static default " + format_number(options_.static_grams_per_kwh) + " g/kWh"
            : "keeping the last good value " + format_number(status_.last_good->grams_per_kwh) +
                  " g/kWh from " + format_number((now_ms - status_.last_good_ms) / 1000.0) +
                  " s ago";
    log(fetch.error.message() + " (reason " + fetch.reason + "; " + keeping + ")");
    logged_reason_ = fetch.reason;
    logged_expiry_ = expired;
  } else if (expired && !logged_expiry_) {
    log("no good answer for longer than the max age (" + format_number(max_age_ms / 1000.0) +
        " s): using the static default " + format_number(options_.static_grams_per_kwh) + " g/kWh");
    logged_expiry_ = true;
  }
  // Exponential backoff from min_backoff up to the refresh interval; a server's Retry-After
  // wins when it asks for longer, up to --grid-max-age: a server (or anything answering in its
  // place) asking for 999999999 s would otherwise stop fetching for good, while the value in
  // force fell back to the static default anyway.
  int shift = std::min(consecutive_failures_, 16);
  ++consecutive_failures_;
  auto wait = std::min(options_.min_backoff * (int64_t{1} << shift), options_.refresh);
  if (fetch.retry_after_s >= 0) {
    const auto asked = std::min<std::chrono::milliseconds>(
        std::chrono::seconds(fetch.retry_after_s),
        std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_age));
    wait = std::max<std::chrono::milliseconds>(wait, asked);
  }
  next_wait_ = wait;
  return wait;
}

GridIntensity::InForce GridIntensity::at(int64_t time_ms) const {
  std::lock_guard lock(mu_);
  InForce out;
  const auto& good = status_.last_good;
  bool usable =
      good && (time_ms - status_.last_good_ms) <=
                  std::chrono::duration_cast<std::chrono::milliseconds>(options_.max_age).count();
  if (!usable) {
    out.grams_per_kwh = options_.static_grams_per_kwh;
    out.signal = options_.live ? "fallback" : "static";
    out.zone = options_.zone;
    // The age keeps growing through the fallback, so an alert on a stale grid signal stays on
    // until the provider answers again, rather than clearing when the default takes over.
    if (good) out.age_seconds = std::max<double>(0, (time_ms - status_.last_good_ms) / 1000.0);
    return out;
  }
  out.grams_per_kwh = good->grams_per_kwh;
  out.pue = good->pue;
  out.cfe_percent = good->cfe_percent;
  if (!good->schedule.empty()) {
    // The last point at or before the tick; before the first point there is nothing in force
    // yet, so the static default applies.
    const IntensityPoint* in_force = nullptr;
    for (const auto& p : good->schedule) {
      if (p.time_ms <= time_ms) in_force = &p;
    }
    out.grams_per_kwh = in_force ? in_force->grams_per_kwh : options_.static_grams_per_kwh;
    out.cfe_percent = in_force ? in_force->cfe_percent : std::nullopt;
  }
  out.signal = good->signal;
  out.zone = good->zone.empty() ? options_.zone : good->zone;
  out.age_seconds =
      !options_.live ? 0 : std::max<double>(0, (time_ms - status_.last_good_ms) / 1000.0);
  return out;
}

GridIntensity::Status GridIntensity::status() const {
  std::lock_guard lock(mu_);
  return status_;
}

void GridIntensity::append_families(std::vector<Family>& out, int64_t now_ms) const {
  InForce now = at(now_ms);
  Status st = status();
  std::string provider(provider_->name());
  out.push_back(Family{"wattprobe_grid_carbon_intensity_grams_per_kwh",
                       "Grid carbon intensity in force (gCO2e per kWh).",
                       MetricType::gauge,
                       {Series{{{"zone", now.zone}, {"provider", provider}, {"signal", now.signal}},
                               now.grams_per_kwh}}});
  out.push_back(Family{"wattprobe_grid_carbon_intensity_age_seconds",
                       "Seconds since the grid provider last answered with a good value (0 for "
                       "static and before the first answer).",
                       MetricType::gauge,
                       {Series{{{"zone", now.zone}, {"provider", provider}}, now.age_seconds}}});
  Family cfe{"wattprobe_grid_carbon_free_ratio",
             "Carbon-free share of the grid's supply in force, 0 to 1, where the provider "
             "publishes it (docs/methodology.md says what each counts).",
             MetricType::gauge,
             {}};
  if (now.cfe_percent) {
    cfe.series.push_back(
        Series{{{"zone", now.zone}, {"provider", provider}}, *now.cfe_percent / 100});
  }
  out.push_back(std::move(cfe));
  Family forecast{"wattprobe_grid_carbon_intensity_forecast_grams_per_kwh",
                  "Forecast grid carbon intensity, by minutes ahead of now.",
                  MetricType::gauge,
                  {}};
  if (st.last_good) {
    // Points are in time order and a minute apart at least, but two can still round to the
    // same horizon from a `now` mid-minute: one series per horizon, the earlier point's.
    int64_t last_horizon = -1;
    for (const auto& p : st.last_good->forecast) {
      if (p.time_ms < now_ms) continue;
      const int64_t horizon = (p.time_ms - now_ms) / 60000;
      if (horizon == last_horizon) continue;
      last_horizon = horizon;
      forecast.series.push_back(Series{
          {{"zone", now.zone}, {"horizon_minutes", std::to_string(horizon)}}, p.grams_per_kwh});
    }
  }
  out.push_back(std::move(forecast));
  Family errors{"wattprobe_agent_grid_fetch_errors_total",
                "Failed or partly failed grid intensity fetches, by reason.",
                MetricType::counter,
                {}};
  for (const auto& [reason, n] : st.errors_by_reason) {
    errors.series.push_back(
        Series{{{"provider", provider}, {"reason", reason}}, static_cast<double>(n)});
  }
  out.push_back(std::move(errors));
}

}  // namespace wattprobe

namespace wattprobe {

Result<std::string> load_secret(const std::string& file, const std::string& env_name) {
  if (!file.empty()) return read_secret_file(file);
  if (!env_name.empty()) {
    const char* v = std::getenv(env_name.c_str());
    if (!v || !*v) {
      return Error{ErrorKind::absent, "$" + env_name, "environment variable not set or empty"};
    }
    return secret_from_text(v, "$" + env_name);
  }
  return Error{ErrorKind::absent, "", "no token file and no token environment variable configured"};
}

Error malformed_answer(const std::string& url, std::string detail) {
  return Error{ErrorKind::malformed, redact_url(url), std::move(detail)};
}

GridFetch GridFetch::malformed(const std::string& url, std::string detail) {
  return failure("malformed", malformed_answer(url, std::move(detail)));
}

}  // namespace wattprobe
