#include "agent/carbon/grid/watttime.h"

#include <nlohmann/json.hpp>

namespace wattprobe {
namespace {

using nlohmann::json;

// The token is a JWT valid for 30 minutes; renewing a little early avoids a 401 mid-refresh.
constexpr int64_t kTokenLifeMs = 25 * 60 * 1000;
// A day ahead, as the other providers' forecasts; the API allows up to 72 hours.
constexpr int kForecastHours = 24;

}  // namespace

Result<std::string> parse_watttime_login(std::string_view body, const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return malformed_answer(url, "login answer is not a JSON object");
  }
  auto t = j.find("token");
  if (t == j.end() || !t->is_string() || t->get<std::string>().empty()) {
    return malformed_answer(url, "login answer has no \"token\" string");
  }
  return t->get<std::string>();
}

GridFetch parse_watttime_forecast(std::string_view body, const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return GridFetch::malformed(url, "answer is not JSON");
  if (!j.is_object()) return GridFetch::malformed(url, "answer is not a JSON object");
  auto meta = j.find("meta");
  if (meta == j.end() || !meta->is_object())
    return GridFetch::malformed(url, "\"meta\" object is missing");
  auto units = meta->find("units");
  if (units == meta->end() || !units->is_string()) {
    return GridFetch::malformed(url, "\"meta.units\" is missing or not a string");
  }
  if (units->get<std::string>() != "lbs_co2_per_mwh") {
    return GridFetch::malformed(url, "\"meta.units\" is \"" + units->get<std::string>() +
                                         "\", expected \"lbs_co2_per_mwh\"");
  }
  auto data = j.find("data");
  if (data == j.end()) return GridFetch::malformed(url, "\"data\" is missing");
  if (!data->is_array()) return GridFetch::malformed(url, "\"data\" is not an array");
  if (data->empty()) return GridFetch::malformed(url, "\"data\" is empty");
  std::vector<IntensityPoint> points;
  for (size_t i = 0; i < data->size(); ++i) {
    const json& e = (*data)[i];
    std::string at = "data[" + std::to_string(i) + "]";
    if (!e.is_object()) return GridFetch::malformed(url, at + " is not an object");
    auto v = e.find("value");
    if (v == e.end()) return GridFetch::malformed(url, at + ".value is missing");
    if (!v->is_number()) {
      return GridFetch::malformed(
          url, at + ".value is " + std::string(v->type_name()) + ", expected a number");
    }
    auto pt = e.find("point_time");
    if (pt == e.end() || !pt->is_string())
      return GridFetch::malformed(url, at + ".point_time is missing or not a string");
    auto t = parse_utc_time(pt->get<std::string>());
    if (!t) return GridFetch::malformed(url, at + ".point_time is not an ISO 8601 UTC time");
    double lbs = v->get<double>();
    double g = lbs * kGramsPerKwhPerLbsPerMwh;
    if (auto why = check_intensity(g)) {
      return GridFetch::failure(
          "out_of_range",
          malformed_answer(url, at + ".value " + format_number(lbs) + " lbs/MWh = " + *why));
    }
    points.push_back({*t, g});
  }
  IntensityReading r;
  r.grams_per_kwh = points.front().grams_per_kwh;
  r.time_ms = points.front().time_ms;
  r.signal = "marginal";
  if (auto region = meta->find("region"); region != meta->end() && region->is_string()) {
    r.zone = region->get<std::string>();
  }
  r.forecast = std::move(points);
  GridFetch f;
  f.reading = std::move(r);
  return f;
}

WattTimeProvider::WattTimeProvider(GridApiOptions options)
    : options_(std::move(options)), http_(options_.http) {}

GridFetch WattTimeProvider::login(int64_t now_ms) {
  HttpGetRequest req;
  req.url = options_.base_url + "/login";
  req.basic_user = options_.username;
  req.basic_password = options_.secret;
  HttpGetResult resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) return http_failure(resp, req.url);
  auto token = parse_watttime_login(resp.body, req.url);
  if (!token) return GridFetch::failure("malformed", token.error());
  token_ = std::move(*token);
  token_expires_ms_ = now_ms + kTokenLifeMs;
  return GridFetch{};
}

GridFetch WattTimeProvider::fetch(int64_t now_ms) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (token_.empty() || now_ms >= token_expires_ms_) {
      GridFetch l = login(now_ms);
      if (!l.reason.empty()) return l;
    }
    HttpGetRequest req;
    req.url = options_.base_url + "/v3/forecast?region=" + options_.zone +
              "&signal_type=co2_moer&horizon_hours=" + std::to_string(kForecastHours);
    req.secret_headers.push_back("Authorization: Bearer " + token_);
    HttpGetResult resp = http_.get(req);
    if (resp.ok() && (resp.status == 401 || resp.status == 403) && attempt == 0) {
      token_.clear();  // revoked or expired early: log in once more
      continue;
    }
    if (!resp.ok() || resp.status != 200) return http_failure(resp, req.url);
    GridFetch f = parse_watttime_forecast(resp.body, req.url);
    if (f.reading && f.reading->zone.empty()) f.reading->zone = options_.zone;
    return f;
  }
  return GridFetch::failure("unauthorized",
                            Error{ErrorKind::permission, options_.base_url, "token refused twice"});
}

}  // namespace wattprobe
