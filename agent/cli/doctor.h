#pragma once

#include <ostream>

#include "agent/options.h"

namespace wattprobe {

/// `wattprobe doctor`: every energy source, available or not and exactly why, what `run` would
/// choose, and which CPU accounting it would use. Returns 0 when a measured source exists, 1
/// when only the estimate is left.
int run_doctor(const Options& options, std::ostream& out);

}  // namespace wattprobe
