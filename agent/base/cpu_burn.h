#pragma once

#include <time.h>

#include <cstdint>

namespace wattprobe {

/// `clock` now, in nanoseconds.
int64_t clock_ns(clockid_t clock);

/// Spins until this thread has used `ns` of CPU time: CPU time, not wall time, so a burner on a
/// loaded host still does the work it was asked for (validate's burners, the tests' cpu_burner).
void burn_cpu_ns(int64_t ns);

/// Sleeps until CLOCK_MONOTONIC reads `monotonic_ns`, through signals.
void sleep_until_monotonic_ns(int64_t monotonic_ns);

}  // namespace wattprobe
