#include "agent/carbon/grid/registry.h"

#include "agent/base/log.h"
#include "agent/base/secret_file.h"
#include "agent/carbon/grid/carbonintensity_uk.h"
#include "agent/carbon/grid/electricitymaps.h"
#include "agent/carbon/grid/file_provider.h"
#include "agent/carbon/grid/host_provider.h"
#include "agent/carbon/grid/watttime.h"

namespace wattprobe {

namespace {

/// Stands in for an API provider whose key could not be loaded: the agent still starts (on the
/// static default) and says why on every refresh.
class MissingSecretProvider : public GridProvider {
 public:
  MissingSecretProvider(std::string name, Error error)
      : name_(std::move(name)), error_(std::move(error)) {}
  std::string_view name() const override { return name_; }
  GridFetch fetch(int64_t) override { return GridFetch::failure("no_credentials", error_); }

 private:
  std::string name_;
  Error error_;
};

}  // namespace

OptionTable<CarbonOptions> grid_option_table() {
  using C = CarbonOptions;
  using std::chrono::hours;
  using std::chrono::seconds;
  auto refresh = [](std::string_view provider) {
    return option_detail::duration_text(find_grid_provider(provider)->default_refresh_seconds);
  };
  return {
      text_option("grid-provider", &C::grid_provider, grid_provider_names()),
      number_option("grid-intensity", &C::grid_intensity, 0, 5000,
                    "static grid intensity and last fallback, gCO2e/kWh")
          .note(", the world average"),
      text_option("grid-zone", &C::zone,
                  "grid zone or region (Electricity Maps zone, WattTime region; a label for "
                  "static)"),
      text_option("grid-file", &C::grid_file,
                  "CSV or JSON schedule of intensities for --grid-provider=file"),
      OptionSpec<C>{
          "grid-url", "base URL of the grid API",
          [](C& c, const std::vector<OptionValue>& v) {
            c.grid_url = v.back().value;
            if (v.back().origin == "command line" && url_has_credentials(c.grid_url)) {
              log_line(
                  "warning: --grid-url carries credentials on the command line, where every local "
                  "user can read them; use --grid-token-file (or --grid-token-env) for the key");
            }
          },
          [](const C& c) { return c.grid_url; }}
          .note(": the provider's public API"),
      secret_file_option("grid-token-file", &C::token_file,
                         "file holding the grid API key or password"),
      text_option("grid-token-env", &C::token_env, "environment variable holding the grid API key"),
      text_option("grid-username", &C::watttime_username, "WattTime user name"),
      duration_option("grid-refresh", &C::refresh_seconds, seconds(1), hours(24),
                      "how often to ask the grid API")
          .note(": the provider's, " + refresh("electricitymaps") +
                " for the APIs; the file provider looks for edits every " + refresh("file")),
      duration_option("grid-max-age", &C::max_age_seconds, seconds(1), hours(24 * 30),
                      "use the static --grid-intensity when no good answer came for this long"),
  };
}

const std::vector<GridProviderEntry>& grid_providers() {
  // API providers default to 15 minutes: Electricity Maps updates hourly, WattTime every
  // 5 minutes, and public APIs rate-limit. The file provider only stats its file.
  static const std::vector<GridProviderEntry> table{
      {"static", "a fixed --grid-intensity", "", false, false, false, "", 0,
       [](GridProviderSettings s) {
         return std::make_unique<StaticGridProvider>(s.static_grams_per_kwh, std::move(s.api.zone));
       }},
      {"file", "a CSV or JSON schedule in --grid-file, re-read when it changes", "", false, false,
       true, "", 10,
       [](GridProviderSettings s) {
         return std::make_unique<FileGridProvider>(std::move(s.file), std::move(s.api.zone));
       }},
      {"electricitymaps", "Electricity Maps v3, average (location-based) intensity", "DE", true,
       false, false, "https://api.electricitymaps.com", 900,
       [](GridProviderSettings s) {
         return std::make_unique<ElectricityMapsProvider>(std::move(s.api));
       }},
      {"watttime", "WattTime v3, marginal emissions (MOER)", "CAISO_NORTH", true, true, false,
       "https://api.watttime.org", 900,
       [](GridProviderSettings s) { return std::make_unique<WattTimeProvider>(std::move(s.api)); }},
      {"host", "inside a VM: the host's intensity, from its energy.json (--host-energy-path)", "",
       false, false, true, "", 10,
       [](GridProviderSettings s) {
         return std::make_unique<HostGridProvider>(std::move(s.file), std::move(s.api.zone));
       }},
      {"carbonintensity-uk", "the GB Carbon Intensity API (National Grid ESO)", "", false, false,
       false, "https://api.carbonintensity.org.uk", 900,
       [](GridProviderSettings s) {
         return std::make_unique<CarbonIntensityUkProvider>(std::move(s.api));
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

Result<bool> validate_grid(const CarbonOptions& o) {
  const std::string& p = o.grid_provider;
  const GridProviderEntry* entry = find_grid_provider(p);
  if (!entry)
    return invalid("grid-provider", "\"" + p + "\" is not one of " + grid_provider_names());
  if (entry->needs_file && o.grid_file.empty()) {
    return invalid("grid-file", "required with grid-provider=" + p);
  }
  if (!entry->zone_example.empty() && o.zone.empty()) {
    return invalid("grid-zone", "required with grid-provider=" + p + " (such as " +
                                    std::string(entry->zone_example) + ")");
  }
  if (entry->needs_secret && o.token_file.empty() && o.token_env.empty()) {
    return invalid("grid-token-file", "required with grid-provider=" + p +
                                          " (or name an environment variable in grid-token-env)");
  }
  if (entry->needs_username && o.watttime_username.empty()) {
    return invalid("grid-username", "required with grid-provider=" + p);
  }
  return true;
}

std::unique_ptr<Carbon> make_carbon(HostPaths paths, CarbonOptions o) {
  // validate_grid has vouched for the name.
  const GridProviderEntry& entry = *find_grid_provider(o.grid_provider);
  GridProviderSettings settings;
  settings.static_grams_per_kwh = o.grid_intensity;
  settings.file = o.grid_file;
  settings.api.zone = o.zone;
  settings.api.base_url = o.grid_url.empty() ? std::string(entry.default_url) : o.grid_url;
  settings.api.username = o.watttime_username;
  settings.api.http.connect_timeout_s = o.connect_timeout_seconds;
  settings.api.http.total_timeout_s = o.timeout_seconds;
  settings.api.http.ca_file = o.ca_file;
  std::unique_ptr<GridProvider> provider;
  if (entry.needs_secret) {
    auto secret = load_secret(o.token_file, o.token_env);
    if (!secret) {
      provider = std::make_unique<MissingSecretProvider>(o.grid_provider, secret.error());
    } else {
      settings.api.secret = std::move(*secret);
    }
  }
  if (!provider) provider = entry.make(std::move(settings));
  GridCadence cadence{entry.default_refresh_seconds > 0, entry.default_refresh_seconds};
  return std::make_unique<Carbon>(std::move(paths), std::move(o), std::move(provider), cadence);
}

}  // namespace wattprobe
