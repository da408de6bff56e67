#pragma once

#include <string>
#include <vector>

#include "agent/base/usage_error.h"
#include "agent/options.h"

namespace wattprobe {

/// Parses `wattprobe run` options from argv (without the subcommand) and the --config file.
/// Throws UsageError naming the option, the file (for config values) and the value.
Options parse_run_options(const std::vector<std::string>& args);

/// The --help text of `run`.
std::string run_options_help();

}  // namespace wattprobe
