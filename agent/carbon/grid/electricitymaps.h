#pragma once

#include <string>
#include <string_view>

#include "agent/base/http_client.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// Electricity Maps v3: /v3/carbon-intensity/latest and /forecast for one zone (required, so the
/// API never falls back to the caller's IP), and /v3/power-breakdown/latest's
/// fossilFreePercentage, the carbon-free share (24/7 CFE). The key goes in the auth-token header.
class ElectricityMapsProvider : public GridProvider {
 public:
  explicit ElectricityMapsProvider(GridApiOptions options);
  std::string_view name() const override { return "electricitymaps"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  GridApiOptions options_;
  HttpClient http_;
  // A plan without the power breakdown answers 401/403/404 on every call: asked once, then not.
  bool breakdown_refused_ = false;
};

/// Parsers for the documented bodies, strict on types and ranges. `url` goes into errors.
GridFetch parse_electricitymaps_latest(std::string_view body, const std::string& url);
Result<std::vector<IntensityPoint>> parse_electricitymaps_forecast(std::string_view body,
                                                                   const std::string& url);
/// /v3/power-breakdown/latest: its fossilFreePercentage (nuclear and renewables, as Electricity
/// Maps defines it); none when the zone's is null (not known).
Result<std::optional<double>> parse_electricitymaps_power_breakdown(std::string_view body,
                                                                    const std::string& url);

}  // namespace wattprobe
