#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace wattprobe {

/// The `--name value` and `--name=value` arguments of a command that has a few flags of its own
/// and no config file (report, scorecard), by name. Each flag at most once and only those in
/// `known`; a value may start with '-' (`--since -24h`), so the word after a flag is always its
/// value. Throws UsageError naming the argument.
std::map<std::string, std::string> parse_flag_args(const std::vector<std::string>& args,
                                                   const std::set<std::string>& known);

/// Throws UsageError: `invalid value "VALUE" for --FLAG: WHY`.
[[noreturn]] void refuse_flag(std::string_view flag, std::string_view value, std::string_view why);

/// [since_ms, until_ms) from `--since` and `--until` as the reports take them (an instant, a UTC
/// day, `now`, or `-24h` before now); by default the 24 hours before now, or before --until.
/// An empty period is refused, naming --since.
struct FlagPeriod {
  int64_t since_ms = 0;
  int64_t until_ms = 0;
};
FlagPeriod flag_period(std::map<std::string, std::string>& given, int64_t now_ms);

}  // namespace wattprobe
