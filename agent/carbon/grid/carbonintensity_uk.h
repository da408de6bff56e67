#pragma once

#include <string>
#include <string_view>

#include "agent/base/http_client.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// National Grid ESO's GB carbon intensity API (no key): GET /intensity for the current
/// half-hour (actual when known, else its forecast), /intensity/{from}/fw24h for the next day and
/// /generation's mix for the carbon-free share (24/7 CFE).
class CarbonIntensityUkProvider : public GridProvider {
 public:
  explicit CarbonIntensityUkProvider(GridApiOptions options);
  std::string_view name() const override { return "carbonintensity-uk"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  GridApiOptions options_;
  HttpClient http_;
};

/// Parses {"data":[{"from","to","intensity":{"forecast","actual","index"}}]}; the reading is the
/// first period, forecast every period.
GridFetch parse_carbonintensity_uk(std::string_view body, const std::string& url);

/// The fuels of the GB generation mix counted as carbon-free: nuclear, wind, solar and hydro.
/// Biomass is not (docs/methodology.md says why), nor imports, gas, coal or other.
bool carbon_free_uk_fuel(std::string_view fuel);
/// Parses /generation's {"data":{"from","to","generationmix":[{"fuel","perc"}]}} (or "data" as
/// an array of one such period): the carbon-free share, 0 to 100.
Result<double> parse_carbonintensity_uk_generation(std::string_view body, const std::string& url);

}  // namespace wattprobe
