#pragma once

#include <string>
#include <string_view>

#include "agent/base/http_client.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// WattTime reports MOER in lbs CO2 per MWh; 1 lb = 0.45359237 kg (exact, by definition of the
/// avoirdupois pound), and kg/MWh = g/kWh, so g/kWh = lbs/MWh × 0.45359237.
inline constexpr double kGramsPerKwhPerLbsPerMwh = 0.45359237;

/// WattTime v3: GET /login (Basic auth) for a 30-minute bearer token, then
/// /v3/forecast?signal_type=co2_moer for the zone (a region such as CAISO_NORTH), 24 hours ahead.
/// The first forecast point is the current 5-minute period.
class WattTimeProvider : public GridProvider {
 public:
  explicit WattTimeProvider(GridApiOptions options);
  std::string_view name() const override { return "watttime"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  GridFetch login(int64_t now_ms);
  GridApiOptions options_;
  HttpClient http_;
  std::string token_;
  int64_t token_expires_ms_ = 0;
};

GridFetch parse_watttime_forecast(std::string_view body, const std::string& url);
Result<std::string> parse_watttime_login(std::string_view body, const std::string& url);

}  // namespace wattprobe
