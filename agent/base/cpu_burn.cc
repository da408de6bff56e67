#include "agent/base/cpu_burn.h"

#include <cerrno>

namespace wattprobe {

int64_t clock_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void burn_cpu_ns(int64_t ns) {
  const int64_t until = clock_ns(CLOCK_THREAD_CPUTIME_ID) + ns;
  volatile uint64_t sink = 0;
  while (clock_ns(CLOCK_THREAD_CPUTIME_ID) < until) {
    for (int i = 0; i < 1000; ++i) sink = sink + i;
  }
}

void sleep_until_monotonic_ns(int64_t monotonic_ns) {
  timespec ts{.tv_sec = monotonic_ns / 1'000'000'000, .tv_nsec = monotonic_ns % 1'000'000'000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

}  // namespace wattprobe
