#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

namespace wattprobe {

/// The `--name value` and `--name=value` arguments of a command that has a few flags of its own
/// and no config file (report, scorecard), by name. Each flag at most once and only those in
/// `known`; a value may start with '-' (`--since -24h`), so the word after a flag is always its
/// value. Throws UsageError naming the argument.
std::map<std::string, std::string> parse_flag_args(const std::vector<std::string>& args,
                                                   const std::set<std::string>& known);

}  // namespace wattprobe
