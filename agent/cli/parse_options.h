#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "agent/options.h"

namespace wattprobe {

/// A bad option, value or config file. main() prints what() on one line and exits 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses `wattprobe run` options from argv (without the subcommand) and the --config file.
/// Throws UsageError naming the option, the file (for config values) and the value.
Options parse_run_options(const std::vector<std::string>& args);

/// The --help text of `run`.
std::string run_options_help();

}  // namespace wattprobe
