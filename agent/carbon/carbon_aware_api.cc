#include "agent/carbon/carbon_aware_api.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string_view>

#include "agent/base/http_endpoint.h"

namespace wattprobe {
namespace {

using nlohmann::json;

constexpr int64_t kMsPerMinute = 60000;
// A week of minutes: no forecast any provider publishes is longer.
constexpr int64_t kMaxWindowMinutes = 7 * 24 * 60;

bool two(std::string_view s, std::size_t pos, int& out) {
  if (pos + 2 > s.size() || s[pos] < '0' || s[pos] > '9' || s[pos + 1] < '0' || s[pos + 1] > '9')
    return false;
  out = (s[pos] - '0') * 10 + (s[pos + 1] - '0');
  return true;
}

/// ISO 8601 as the SDK's clients send it: YYYY-MM-DDTHH:MM[:SS[.fff]] then Z or ±HH:MM.
std::optional<int64_t> parse_time(std::string_view s) {
  int c1, c2, mo, d, h, mi, sec = 0;
  if (s.size() < 17 || !two(s, 0, c1) || !two(s, 2, c2) || s[4] != '-' || !two(s, 5, mo) ||
      s[7] != '-' || !two(s, 8, d) || (s[10] != 'T' && s[10] != 't') || !two(s, 11, h) ||
      s[13] != ':' || !two(s, 14, mi))
    return std::nullopt;
  std::size_t pos = 16;
  int64_t ms = 0;
  if (s[pos] == ':') {
    if (!two(s, pos + 1, sec)) return std::nullopt;
    pos += 3;
    if (pos < s.size() && s[pos] == '.') {
      const std::size_t start = ++pos;
      int scale = 100;
      while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
        ms += (s[pos] - '0') * scale;
        scale /= 10;
        ++pos;
      }
      if (pos == start) return std::nullopt;
    }
  }
  int64_t offset_min = 0;
  std::string_view zone = s.substr(pos);
  if (zone == "Z" || zone == "z") {
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    int oh, om;
    if (!two(zone, 1, oh) || !two(zone, 4, om) || oh > 23 || om > 59) return std::nullopt;
    offset_min = (zone[0] == '-' ? -1 : 1) * (oh * 60 + om);
  } else {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::tm tm{};
  tm.tm_year = c1 * 100 + c2 - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const int64_t t = static_cast<int64_t>(timegm(&tm));
  return (t - offset_min * 60) * 1000 + ms;
}

/// The SDK's TimeSpan text, "HH:MM:SS" ("1.02:00:00" past a day).
std::string timespan(int64_t ms) {
  int64_t s = ms / 1000;
  char buf[48];
  const long long days = s / 86400;
  s %= 86400;
  if (days > 0) {
    std::snprintf(buf, sizeof buf, "%lld.%02lld:%02lld:%02lld", days,
                  static_cast<long long>(s / 3600), static_cast<long long>(s / 60 % 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  }
  return buf;
}

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json; charset=utf-8";
  r.body = body.dump();
  r.body += '\n';
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

/// The SDK's (ASP.NET's) validation problem: the parameter and what is wrong with it.
HttpResponse bad_parameter(const std::string& name, const std::string& why) {
  return json_response(400, json{{"type", "https://tools.ietf.org/html/rfc7231#section-6.5.1"},
                                 {"title", "One or more validation errors occurred."},
                                 {"status", 400},
                                 {"errors", json{{name, json::array({why})}}}});
}

HttpResponse problem(int status, const std::string& title, const std::string& detail) {
  return json_response(status, json{{"title", title}, {"status", status}, {"detail", detail}});
}

bool same_zone(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

class CarbonAwareApi : public HttpEndpoint {
 public:
  explicit CarbonAwareApi(CarbonAwareFeed feed) : feed_(std::move(feed)) {
    if (!feed_.now) {
      feed_.now = [] {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
      };
    }
  }

  std::vector<std::string> paths() const override { return {"/emissions/"}; }

  HttpResponse handle(const HttpRequest& request) override {
    if (request.method != "GET" && request.method != "HEAD") {
      HttpResponse r = problem(405, "Method Not Allowed", "only GET is served here");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    try {
      if (request.path == "/emissions/forecasts/current") return forecasts_current(request);
      if (request.path == "/emissions/bylocation") return by_location(request);
      if (request.path == "/emissions/average-carbon-intensity") return average(request);
    } catch (const std::exception& e) {
      // An answer, never an exception into the server: an allocation failure, a JSON dump.
      return problem(500, "Internal Server Error", e.what());
    }
    return problem(404, "Not Found",
                   "no route " + request.path +
                       "; served: /emissions/forecasts/current, /emissions/bylocation, "
                       "/emissions/average-carbon-intensity");
  }

 private:
  /// The location asked for, checked against the agent's zone: an error response, or none.
  std::optional<HttpResponse> check_location(const HttpRequest& request, const std::string& zone,
                                             bool required) {
    bool seen = false;
    for (const auto& [k, v] : request.query) {
      if (k != "location") continue;
      seen = true;
      if (v.empty()) return bad_parameter("location", "The location field is empty.");
      if (!same_zone(v, zone)) {
        return problem(404, "Not Found",
                       "location \"" + v.substr(0, 64) +
                           "\" is not known here: this agent knows "
                           "only its own zone \"" +
                           zone + "\"");
      }
    }
    if (required && !seen) return bad_parameter("location", "The location field is required.");
    return std::nullopt;
  }

  /// A time parameter: nullopt if absent; an error response if malformed.
  static std::optional<HttpResponse> read_time(const HttpRequest& request, const char* name,
                                               std::optional<int64_t>& out) {
    auto v = request.query_param(name);
    if (!v) return std::nullopt;
    auto t = parse_time(*v);
    if (!t) {
      return bad_parameter(name, "The value '" + v->substr(0, 64) +
                                     "' is not an ISO 8601 time (YYYY-MM-DDTHH:MM:SSZ or with "
                                     "an offset).");
    }
    out = *t;
    return std::nullopt;
  }

  std::string zone_of(const ForecastAnswer& a) const {
    return a.zone.empty() ? feed_.zone : a.zone;
  }

  HttpResponse forecasts_current(const HttpRequest& request) {
    // Whole seconds: the start "now" then prints as a plain RFC 3339 time.
    const int64_t now = feed_.now() / 1000 * 1000;
    ForecastAnswer answer = feed_.forecast(now);
    const std::string zone = zone_of(answer);
    if (auto bad = check_location(request, zone, false)) return *bad;
    std::optional<int64_t> window_minutes;
    if (auto v = request.query_param("windowSize")) {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
      if (ec != std::errc() || end != v->data() + v->size() || n < 1 || n > kMaxWindowMinutes) {
        return bad_parameter("windowSize", "The value '" + v->substr(0, 32) +
                                               "' is not a whole number of minutes from 1 to " +
                                               std::to_string(kMaxWindowMinutes) + ".");
      }
      window_minutes = n;
    }
    std::optional<int64_t> start, end;
    if (auto bad = read_time(request, "dataStartAt", start)) return *bad;
    if (auto bad = read_time(request, "dataEndAt", end)) return *bad;
    if (start && end && *end <= *start) {
      return bad_parameter("dataEndAt", "dataEndAt must be after dataStartAt.");
    }
    if (!answer.forecast) {
      return problem(503, "Service Unavailable", "no usable forecast: " + answer.unusable);
    }
    const Forecast& full = *answer.forecast;
    const int64_t from = start.value_or(std::max(now, full.points.front().time_ms));
    const int64_t to = end.value_or(full.end_ms);
    Forecast clipped = clip_forecast(full, from, to);
    if (clipped.points.empty()) {
      return bad_parameter(start ? "dataStartAt" : "dataEndAt",
                           "The forecast runs from " + format_rfc3339(full.points.front().time_ms) +
                               " to " + format_rfc3339(full.end_ms) + "; " + format_rfc3339(from) +
                               " to " + format_rfc3339(to) + " is outside it.");
    }
    // The SDK's default window is one data point.
    const int64_t window_ms =
        window_minutes ? *window_minutes * kMsPerMinute
                       : (clipped.points.size() > 1 ? clipped.points[1].time_ms : clipped.end_ms) -
                             clipped.points[0].time_ms;
    std::vector<Window> windows = forecast_windows(clipped, window_ms);
    std::optional<Window> best = best_window(windows);
    if (!best) {
      return bad_parameter("windowSize", "A window of " + std::to_string(window_ms / kMsPerMinute) +
                                             " minutes does not fit between " +
                                             format_rfc3339(clipped.points.front().time_ms) +
                                             " and " + format_rfc3339(clipped.end_ms) +
                                             ", where the forecast ends.");
    }
    auto point = [&](const Window& w) {
      return json{{"location", zone},
                  {"timestamp", format_rfc3339(w.start_ms)},
                  {"duration", w.duration_ms / kMsPerMinute},
                  {"value", w.grams_per_kwh}};
    };
    json data = json::array();
    for (const auto& w : windows) data.push_back(point(w));
    json out = json::array({json{{"location", zone},
                                 {"dataStartAt", format_rfc3339(clipped.points.front().time_ms)},
                                 {"dataEndAt", format_rfc3339(clipped.end_ms)},
                                 {"windowSize", window_ms / kMsPerMinute},
                                 {"generatedAt", format_rfc3339(answer.generated_ms)},
                                 {"optimalDataPoints", json::array({point(*best)})},
                                 {"forecastData", std::move(data)}}});
    return json_response(200, out);
  }

  HttpResponse by_location(const HttpRequest& request) {
    const int64_t now = feed_.now();
    const std::string zone = zone_of(feed_.forecast(now));
    if (auto bad = check_location(request, zone, false)) return *bad;
    std::optional<int64_t> from, to;
    if (auto bad = read_time(request, "time", from)) return *bad;
    if (auto bad = read_time(request, "toTime", to)) return *bad;
    const int64_t a = from.value_or(now - IntensityHistory::kKeepMs);
    const int64_t b = to.value_or(now);
    if (b <= a) return bad_parameter("toTime", "toTime must be after time.");
    json out = json::array();
    for (const auto& s : feed_.history->between(a, b)) {
      out.push_back(json{{"location", zone},
                         {"time", format_rfc3339(s.start_ms)},
                         {"rating", s.grams_per_kwh},
                         {"duration", timespan(s.end_ms - s.start_ms)}});
    }
    return json_response(200, out);
  }

  HttpResponse average(const HttpRequest& request) {
    const int64_t now = feed_.now();
    const std::string zone = zone_of(feed_.forecast(now));
    if (auto bad = check_location(request, zone, true)) return *bad;
    std::optional<int64_t> from, to;
    if (auto bad = read_time(request, "startTime", from)) return *bad;
    if (auto bad = read_time(request, "endTime", to)) return *bad;
    if (!from) return bad_parameter("startTime", "The startTime field is required.");
    if (!to) return bad_parameter("endTime", "The endTime field is required.");
    if (*to <= *from) return bad_parameter("endTime", "endTime must be after startTime.");
    auto mean = feed_.history->mean(*from, *to);
    if (!mean) {
      // The SDK answers 0 here; a zero would read as a clean grid.
      return problem(404, "Not Found",
                     "no intensity recorded between " + format_rfc3339(*from) + " and " +
                         format_rfc3339(*to) + " (the agent keeps 7 days)");
    }
    return json_response(200, json{{"location", zone},
                                   {"startTime", format_rfc3339(*from)},
                                   {"endTime", format_rfc3339(*to)},
                                   {"carbonIntensity", *mean}});
  }

  CarbonAwareFeed feed_;
};

}  // namespace

std::shared_ptr<HttpEndpoint> make_carbon_aware_api(CarbonAwareFeed feed) {
  return std::make_shared<CarbonAwareApi>(std::move(feed));
}

}  // namespace wattprobe
