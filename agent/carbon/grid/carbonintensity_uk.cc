#include "agent/carbon/grid/carbonintensity_uk.h"

#include <algorithm>
#include <nlohmann/json.hpp>

namespace wattprobe {
namespace {

using nlohmann::json;

}  // namespace

GridFetch parse_carbonintensity_uk(std::string_view body, const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return GridFetch::malformed(url, "answer is not JSON");
  if (!j.is_object()) return GridFetch::malformed(url, "answer is not a JSON object");
  auto data = j.find("data");
  if (data == j.end()) return GridFetch::malformed(url, "\"data\" is missing");
  if (!data->is_array()) return GridFetch::malformed(url, "\"data\" is not an array");
  if (data->empty()) return GridFetch::malformed(url, "\"data\" is empty");
  IntensityReading r;
  r.signal = "average";
  r.zone = "GB";
  for (size_t i = 0; i < data->size(); ++i) {
    const json& e = (*data)[i];
    std::string at = "data[" + std::to_string(i) + "]";
    if (!e.is_object()) return GridFetch::malformed(url, at + " is not an object");
    auto from = e.find("from");
    if (from == e.end() || !from->is_string())
      return GridFetch::malformed(url, at + ".from is missing or not a string");
    auto t = parse_utc_time(from->get<std::string>());
    if (!t) return GridFetch::malformed(url, at + ".from is not an ISO 8601 UTC time");
    auto in = e.find("intensity");
    if (in == e.end() || !in->is_object())
      return GridFetch::malformed(url, at + ".intensity object is missing");
    auto fc = in->find("forecast");
    auto ac = in->find("actual");
    // actual is null for periods not yet measured; the forecast stands in for it.
    const json* use = nullptr;
    if (ac != in->end() && !ac->is_null()) {
      if (!ac->is_number())
        return GridFetch::malformed(url, at + ".intensity.actual is " +
                                             std::string(ac->type_name()) +
                                             ", expected a number or null");
      use = &*ac;
    }
    if (fc == in->end()) return GridFetch::malformed(url, at + ".intensity.forecast is missing");
    if (!fc->is_number())
      return GridFetch::malformed(url, at + ".intensity.forecast is " +
                                           std::string(fc->type_name()) + ", expected a number");
    if (!use) use = &*fc;
    for (const json* v : {&*fc, use}) {
      if (auto why = check_intensity(v->get<double>())) {
        return GridFetch::failure("out_of_range", malformed_answer(url, at + ".intensity " + *why));
      }
    }
    if (i == 0) {
      r.grams_per_kwh = use->get<double>();
      r.time_ms = *t;
    }
    r.forecast.push_back({*t, fc->get<double>()});
  }
  GridFetch f;
  f.reading = std::move(r);
  return f;
}

bool carbon_free_uk_fuel(std::string_view fuel) {
  return fuel == "nuclear" || fuel == "wind" || fuel == "solar" || fuel == "hydro";
}

Result<double> parse_carbonintensity_uk_generation(std::string_view body, const std::string& url) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return malformed_answer(url, "answer is not JSON");
  if (!j.is_object()) return malformed_answer(url, "answer is not a JSON object");
  auto data = j.find("data");
  if (data == j.end()) return malformed_answer(url, "\"data\" is missing");
  const json* period = &*data;
  if (data->is_array()) {
    if (data->empty()) return malformed_answer(url, "\"data\" is empty");
    period = &(*data)[0];
  }
  if (!period->is_object()) return malformed_answer(url, "\"data\" is not an object");
  auto mix = period->find("generationmix");
  if (mix == period->end() || !mix->is_array() || mix->empty())
    return malformed_answer(url, "\"generationmix\" is missing, not an array or empty");
  double carbon_free = 0, total = 0;
  for (std::size_t i = 0; i < mix->size(); ++i) {
    const json& e = (*mix)[i];
    const std::string at = "generationmix[" + std::to_string(i) + "]";
    if (!e.is_object()) return malformed_answer(url, at + " is not an object");
    auto fuel = e.find("fuel");
    auto perc = e.find("perc");
    if (fuel == e.end() || !fuel->is_string())
      return malformed_answer(url, at + ".fuel is missing or not a string");
    if (perc == e.end() || !perc->is_number())
      return malformed_answer(url, at + ".perc is missing or not a number");
    if (auto why = check_cfe_percent(perc->get<double>()))
      return malformed_answer(url, at + ".perc " + *why);
    total += perc->get<double>();
    if (carbon_free_uk_fuel(fuel->get<std::string>())) carbon_free += perc->get<double>();
  }
  // The published shares are rounded to 0.1 %, so they sum to 100 give or take a little.
  if (total < 95 || total > 105) {
    return malformed_answer(
        url, "the generation mix sums to " + format_number(total) + " %, not about 100");
  }
  return std::min(100.0, carbon_free / total * 100);
}

CarbonIntensityUkProvider::CarbonIntensityUkProvider(GridApiOptions options)
    : options_(std::move(options)), http_(options_.http) {}

GridFetch CarbonIntensityUkProvider::fetch(int64_t) {
  HttpGetRequest req;
  req.url = options_.base_url + "/intensity";
  HttpGetResult resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) return http_failure(resp, req.url);
  GridFetch f = parse_carbonintensity_uk(resp.body, req.url);
  if (!f.reading) return f;
  req.url = options_.base_url + "/generation";
  resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) {
    GridFetch ff = http_failure(resp, req.url);
    f.warnings.emplace_back(ff.reason, ff.error);
  } else if (auto cfe = parse_carbonintensity_uk_generation(resp.body, req.url)) {
    f.reading->cfe_percent = *cfe;
  } else {
    f.warnings.emplace_back("malformed", cfe.error());
  }
  // The API takes the period start as YYYY-MM-DDThh:mmZ.
  time_t secs = static_cast<time_t>(f.reading->time_ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char from[32];
  std::strftime(from, sizeof from, "%Y-%m-%dT%H:%MZ", &tm);
  req.url = options_.base_url + "/intensity/" + from + "/fw24h";
  resp = http_.get(req);
  if (!resp.ok() || resp.status != 200) {
    GridFetch ff = http_failure(resp, req.url);
    f.warnings.emplace_back(ff.reason, ff.error);
    return f;
  }
  GridFetch ff = parse_carbonintensity_uk(resp.body, req.url);
  if (!ff.reading) {
    f.warnings.emplace_back(ff.reason, ff.error);
  } else {
    f.reading->forecast = std::move(ff.reading->forecast);
  }
  return f;
}

}  // namespace wattprobe
