#pragma once

#include <string>
#include <vector>

namespace wattprobe {

/// The entry points of the commands that build the whole pipeline, for main: the arguments after
/// the command's name in, the exit code out (0, 1 on failure, 2 for a usage error, printed as
/// "wattprobe COMMAND: why"). Declared here, defined in each command's own file, as git's
/// builtin.h declares its cmd_* functions: the entry then reaches a command without reading its
/// header, and the structure drawn from the includes stays a level short of its limit
/// (docs/architecture.md, "Keeping the structure shallow").

/// `wattprobe top` (agent/cli/top.cc).
int top_command(const std::vector<std::string>& args);

/// `wattprobe validate` (agent/cli/validate.cc).
int validate_command(const std::vector<std::string>& args, const std::string& version);

}  // namespace wattprobe
