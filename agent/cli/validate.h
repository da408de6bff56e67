#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent/options.h"

namespace wattprobe {

struct ValidateOptions {
  /// Every check, shorter: about half a minute instead of several.
  bool quick = false;
  std::filesystem::path out = "wattprobe-validate";
  /// --idle-truth DOMAIN=W: the idle power a fixture is known to draw, per socket row.
  std::map<std::string, double> idle_truth;
  Options agent;
};

/// Parses `wattprobe validate` arguments (without the command): --quick, --out, --idle-truth,
/// and every `run` option for the agent it runs in the process. Throws UsageError.
ValidateOptions parse_validate_options(const std::vector<std::string>& args);

std::string validate_help();

/// Runs the agent's pipeline in this process under a load it makes itself, checks the agent's
/// claims against the kernel's own figures, and writes report.md and report.json to --out.
/// Returns 0 when every check that ran passed, 1 otherwise (or when it cannot run).
int run_validate(const ValidateOptions& options, const std::string& version);

}  // namespace wattprobe
