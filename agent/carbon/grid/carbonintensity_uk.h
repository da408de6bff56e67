#pragma once

#include <string>
#include <string_view>

#include "agent/base/http_client.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

struct CarbonIntensityUkOptions {
  std::string base_url = "https://api.carbonintensity.org.uk";
  bool forecast = true;
  HttpOptions http;
};

/// National Grid ESO's GB carbon intensity API (no key): GET /intensity for the current
/// half-hour (actual when known, else its forecast) and /intensity/{from}/fw24h for the next day.
class CarbonIntensityUkProvider : public GridProvider {
 public:
  explicit CarbonIntensityUkProvider(CarbonIntensityUkOptions options);
  std::string_view name() const override { return "carbonintensity-uk"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  CarbonIntensityUkOptions options_;
  HttpClient http_;
};

/// Parses {"data":[{"from","to","intensity":{"forecast","actual","index"}}]}; the reading is the
/// first period, forecast every period.
GridFetch parse_carbonintensity_uk(std::string_view body, const std::string& url);

}  // namespace wattprobe
