#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "agent/cli/parse_options.h"

namespace wattprobe {

struct WhenOptions {
  int64_t duration_ms = 0;  // whole minutes: the Carbon Aware SDK's windowSize unit
  int64_t within_ms = 0;    // the window must end by now + within
  std::string url;          // a running agent's base or /metrics URL; empty: ask the provider
  bool json = false;
  std::vector<std::string> exec;  // the command after `--exec --`; empty: print only
  Options agent;                  // `run`'s options, for asking the provider directly
};

/// Parses `wattprobe when` options (without the subcommand). Throws UsageError naming the
/// option and the value.
WhenOptions parse_when_options(const std::vector<std::string>& args);
std::string when_help();

/// Prints the best start and, with exec, sleeps until it and replaces this process with the
/// command. Returns 0 when printed, 1 when no forecast is usable (having run the command at once
/// with exec), 143 on SIGTERM (130 on SIGINT) while waiting, 127 when the command cannot start.
int run_when(const WhenOptions& options, std::ostream& out, std::ostream& err);

/// `wattprobe when ARGS`: help, parsing (exit 2 on a usage error) and run_when.
int when_command(const std::vector<std::string>& args);

}  // namespace wattprobe
