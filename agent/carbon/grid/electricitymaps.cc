#include "agent/carbon/grid/electricitymaps.h"

#include <nlohmann/json.hpp>

namespace wattprobe {
namespace {

using nlohmann::json;

std::optional<std::string> read_point(const json& j, IntensityPoint& p) {
  if (!j.is_object()) return "a forecast entry is not an object";
  auto ci = j.find("carbonIntensity");
  if (ci == j.end()) return "\"carbonIntensity\" is missing";
  if (!ci->is_number())
    return "\"carbonIntensity\" is " + std::string(ci->type_name()) + ", expected a number";
  auto dt = j.find("datetime");
  if (dt == j.end()) return "\"datetime\" is missing";
  if (!dt->is_string())
    return "\"datetime\" is " + std::string(dt->type_name()) + ", expected a string";
  auto t = parse_utc_time(dt->get<std::string>());
  if (!t) return "\"datetime\" " + dt->get<std::string>() + " is not an ISO 8601 UTC time";
  p.time_ms = *t;
  p.grams_per_kwh = ci->get<double>();
  return std::nullopt;
}

}  // namespace

GridFetch parse_electricitymaps_latest(std::string_view body, const std::string& url) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return GridFetch::malformed(url, "answer is not JSON");
  if (!j.is_object()) return GridFetch::malformed(url, "answer is not a JSON object");
  IntensityPoint p;
  if (auto why = read_point(j, p)) return GridFetch::malformed(url, *why);
  if (auto why = check_intensity(p.grams_per_kwh)) {
    return GridFetch::failure("out_of_range", malformed_answer(url, "\"carbonIntensity\" " + *why));
  }
  IntensityReading r;
  r.grams_per_kwh = p.grams_per_kwh;
  r.time_ms = p.time_ms;
  r.signal = "average";
  if (auto z = j.find("zone"); z != j.end()) {
    if (!z->is_string()) return GridFetch::malformed(url, "\"zone\" is not a string");
    r.zone = z->get<std::string>();
  }
  GridFetch f;
  f.reading = std::move(r);
  return f;
}

Result<std::vector<IntensityPoint>> parse_electricitymaps_forecast(std::string_view body,
                                                                   const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return malformed_answer(url, "answer is not JSON");
  if (!j.is_object()) return malformed_answer(url, "answer is not a JSON object");
  auto fc = j.find("forecast");
  if (fc == j.end()) return malformed_answer(url, "\"forecast\" is missing");
  if (!fc->is_array()) return malformed_answer(url, "\"forecast\" is not an array");
  std::vector<IntensityPoint> out;
  for (size_t i = 0; i < fc->size(); ++i) {
    IntensityPoint p;
    if (auto why = read_point((*fc)[i], p))
      return malformed_answer(url, "forecast[" + std::to_string(i) + "]: " + *why);
    if (auto why = check_intensity(p.grams_per_kwh)) {
      return malformed_answer(url,
                              "forecast[" + std::to_string(i) + "]: \"carbonIntensity\" " + *why);
    }
    out.push_back(p);
  }
  return out;
}

Result<std::optional<double>> parse_electricitymaps_power_breakdown(std::string_view body,
                                                                    const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return malformed_answer(url, "answer is not JSON");
  if (!j.is_object()) return malformed_answer(url, "answer is not a JSON object");
  auto ff = j.find("fossilFreePercentage");
  if (ff == j.end()) return malformed_answer(url, "\"fossilFreePercentage\" is missing");
  if (ff->is_null()) return std::optional<double>();
  if (!ff->is_number())
    return malformed_answer(url, "\"fossilFreePercentage\" is " + std::string(ff->type_name()) +
                                     ", expected a number or null");
  if (auto why = check_cfe_percent(ff->get<double>()))
    return malformed_answer(url, "\"fossilFreePercentage\" " + *why);
  return std::optional<double>(ff->get<double>());
}

ElectricityMapsProvider::ElectricityMapsProvider(GridApiOptions options)
    : options_(std::move(options)), http_(options_.http) {}

GridFetch ElectricityMapsProvider::fetch(int64_t) {
  HttpGetRequest req;
  req.secret_headers.push_back("auth-token: " + options_.secret);
  req.url = options_.base_url + "/v3/carbon-intensity/latest?zone=" + options_.zone;
  HttpGetResult resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) return http_failure(resp, req.url);
  GridFetch f = parse_electricitymaps_latest(resp.body, req.url);
  if (!f.reading) return f;
  if (f.reading->zone.empty()) f.reading->zone = options_.zone;
  if (!breakdown_refused_) {
    req.url = options_.base_url + "/v3/power-breakdown/latest?zone=" + options_.zone;
    resp = http_.get(req);
    if (!resp.ok() || resp.status != 200) {
      GridFetch ff = http_failure(resp, req.url);
      breakdown_refused_ =
          resp.ok() && (resp.status == 401 || resp.status == 403 || resp.status == 404);
      if (breakdown_refused_) ff.error.detail += " (the power breakdown is not asked again)";
      f.warnings.emplace_back(ff.reason, ff.error);
    } else if (auto cfe = parse_electricitymaps_power_breakdown(resp.body, req.url)) {
      f.reading->cfe_percent = *cfe;
    } else {
      f.warnings.emplace_back("malformed", cfe.error());
    }
  }
  req.url = options_.base_url + "/v3/carbon-intensity/forecast?zone=" + options_.zone;
  resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) {
    GridFetch ff = http_failure(resp, req.url);
    f.warnings.emplace_back(ff.reason, ff.error);
  } else if (auto points = parse_electricitymaps_forecast(resp.body, req.url)) {
    f.reading->forecast = std::move(*points);
  } else {
    f.warnings.emplace_back("malformed", points.error());
  }
  return f;
}

}  // namespace wattprobe
