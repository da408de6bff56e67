#include "agent/carbon/grid/registry.h"

#include "agent/carbon/grid/carbonintensity_uk.h"
#include "agent/carbon/grid/electricitymaps.h"
#include "agent/carbon/grid/file_provider.h"
#include "agent/carbon/grid/watttime.h"

namespace wattprobe {

const std::vector<GridProviderEntry>& grid_providers() {
  // API providers default to 15 minutes: Electricity Maps updates hourly, WattTime every
  // 5 minutes, and public APIs rate-limit. The file provider only stats its file.
  static const std::vector<GridProviderEntry> table{
      {"static", "a fixed --grid-intensity", "", false, false, false, "", 0,
       [](GridProviderSettings s) {
         return std::make_unique<StaticGridProvider>(s.static_grams_per_kwh, std::move(s.zone));
       }},
      {"file", "a CSV or JSON schedule in --grid-file, re-read when it changes", "", false, false,
       true, "", 10,
       [](GridProviderSettings s) {
         return std::make_unique<FileGridProvider>(std::move(s.file), std::move(s.zone));
       }},
      {"electricitymaps", "Electricity Maps v3, average (location-based) intensity", "DE", true,
       false, false, "https://api.electricitymaps.com", 900,
       [](GridProviderSettings s) {
         ElectricityMapsOptions e;
         e.base_url = std::move(s.url);
         e.zone = std::move(s.zone);
         e.token = std::move(s.secret);
         e.http = s.http;
         return std::make_unique<ElectricityMapsProvider>(std::move(e));
       }},
      {"watttime", "WattTime v3, marginal emissions (MOER)", "CAISO_NORTH", true, true, false,
       "https://api.watttime.org", 900,
       [](GridProviderSettings s) {
         WattTimeOptions w;
         w.base_url = std::move(s.url);
         w.region = std::move(s.zone);
         w.username = std::move(s.username);
         w.password = std::move(s.secret);
         w.http = s.http;
         return std::make_unique<WattTimeProvider>(std::move(w));
       }},
      {"carbonintensity-uk", "the GB Carbon Intensity API (National Grid ESO)", "", false, false,
       false, "https://api.carbonintensity.org.uk", 900,
       [](GridProviderSettings s) {
         CarbonIntensityUkOptions u;
         u.base_url = std::move(s.url);
         u.http = s.http;
         return std::make_unique<CarbonIntensityUkProvider>(u);
       }},
  };
  return table;
}

const GridProviderEntry* find_grid_provider(std::string_view name) {
  for (const auto& e : grid_providers()) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

std::string grid_provider_names() {
  std::string out;
  for (const auto& e : grid_providers()) out += (out.empty() ? "" : ", ") + std::string(e.name);
  return out;
}

}  // namespace wattprobe
