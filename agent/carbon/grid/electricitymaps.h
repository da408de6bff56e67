#pragma once

#include <string>
#include <string_view>

#include "agent/base/http_client.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

struct ElectricityMapsOptions {
  std::string base_url = "https://api.electricitymaps.com";
  std::string zone;   // e.g. "DE"; required, so the API never falls back to the caller's IP
  std::string token;  // sent as the auth-token header
  bool forecast = true;
  HttpOptions http;
};

/// Electricity Maps v3: /v3/carbon-intensity/latest and /forecast for one zone.
class ElectricityMapsProvider : public GridProvider {
 public:
  explicit ElectricityMapsProvider(ElectricityMapsOptions options);
  std::string_view name() const override { return "electricitymaps"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  ElectricityMapsOptions options_;
  HttpClient http_;
};

/// Parsers for the documented bodies, strict on types and ranges. `url` goes into errors.
GridFetch parse_electricitymaps_latest(std::string_view body, const std::string& url);
Result<std::vector<IntensityPoint>> parse_electricitymaps_forecast(std::string_view body,
                                                                   const std::string& url);

}  // namespace wattprobe
