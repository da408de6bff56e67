#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/http_client.h"
#include "agent/carbon/carbon.h"
#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// What a provider is made from: the configured values, with the key already read.
struct GridProviderSettings {
  double static_grams_per_kwh = 475;
  std::string file;
  /// The zone (a label for static, file and host), and what the API providers ask with: the
  /// configured base URL, else the entry's default.
  GridApiOptions api;
};

/// One line of the grid provider table: a provider's name, what it needs, and how to make it.
/// `--grid-provider` checking, its help text, the validation of the grid options, the refresh
/// cadence and doctor all read this table; adding a provider is its file pair plus one line.
struct GridProviderEntry {
  std::string_view name;
  std::string_view help;          // one phrase for --help and the README
  std::string_view zone_example;  // non-empty: a zone is required, e.g. "DE"
  bool needs_secret = false;      // an API key from --grid-token-file or the environment
  bool needs_username = false;    // WattTime's login
  bool needs_file = false;        // --grid-file
  std::string_view default_url;   // the public API; empty for providers without network
  /// How often to ask by default; 0 for a provider whose value never changes (no refresh
  /// thread, no age, signal "static").
  double default_refresh_seconds = 0;
  std::function<std::unique_ptr<GridProvider>(GridProviderSettings)> make;
};

const std::vector<GridProviderEntry>& grid_providers();
/// The entry of that name, or null.
const GridProviderEntry* find_grid_provider(std::string_view name);
/// "static, file, electricitymaps, ...": the names in table order, for messages and help.
std::string grid_provider_names();

/// What the named provider needs (zone, key, user name, file), or nullopt when the options give
/// it; a message naming the option otherwise. validate() checks the rest of the options.
Result<bool> validate_grid(const CarbonOptions& options);

/// --grid-*: the provider, its zone, key, file and cadence.
OptionTable<CarbonOptions> grid_option_table();

/// The carbon stage with the provider the options name. The key is read now (a root-only file
/// is fine: the agent still holds its privileges); a key that cannot be read leaves the agent
/// on the static default, saying why on every refresh. Nothing is fetched until start().
std::unique_ptr<Carbon> make_carbon(HostPaths paths, CarbonOptions options);

}  // namespace wattprobe
