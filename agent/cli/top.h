#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "agent/cli/parse_options.h"
#include "agent/cli/top_frame.h"

namespace wattprobe {

struct TopOptions {
  std::string url = "http://127.0.0.1:9887/metrics";
  /// Run an agent in this process instead of reading one's /metrics; `agent` holds its options.
  bool standalone = false;
  std::chrono::milliseconds interval{1000};
  TopSort sort = TopSort::watts;
  Options agent;
};

/// Parses `wattprobe top` options (without the subcommand): --url, --standalone, --interval,
/// --sort, and with --standalone every `run` option. Throws UsageError naming the option and the
/// value.
TopOptions parse_top_options(const std::vector<std::string>& args);

/// The --help text of `top`.
std::string top_options_help();

/// The live view on the controlling terminal until `q`, Ctrl-C or a stop signal. Returns the
/// exit status: 0 on q or Ctrl-C, 128 + the signal on SIGTERM or SIGHUP, 1 when there is no
/// terminal or the standalone agent cannot start. The terminal is restored in every case.
int run_top(const TopOptions& options);

}  // namespace wattprobe
