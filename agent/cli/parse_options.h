#pragma once

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "agent/base/option_table.h"
#include "agent/base/usage_error.h"
#include "agent/options.h"

namespace wattprobe {

/// Parses `wattprobe run` options from argv (without the subcommand) and the --config file.
/// Throws UsageError naming the option, the file (for config values) and the value.
Options parse_run_options(const std::vector<std::string>& args);

/// A command's own options from `args` (`top`, `when`), leaving in `rest` those it does not know:
/// `run`'s, which parse_run_options reads when the command runs the pipeline or asks the grid
/// itself. Throws UsageError naming what Boost refused.
boost::program_options::variables_map parse_own_options(
    const std::vector<std::string>& args, const boost::program_options::options_description& own,
    std::vector<std::string>* rest);

/// Every option of `run`, declared once: parsing, --help and the check of
/// packaging/wattprobe.conf read it.
const OptionTable<Options>& run_option_table();

/// The --help text of `run`.
std::string run_options_help();

}  // namespace wattprobe
