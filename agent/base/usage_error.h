#pragma once

#include <stdexcept>

namespace wattprobe {

/// A bad option, value or config file, from any command. main() prints what() on one line and
/// exits 2. In base, so a command that parses its own options (report, when, scorecard) needs
/// nothing of the daemon's.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace wattprobe
