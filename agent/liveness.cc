#include "agent/liveness.h"

#include <cstdio>

namespace wattprobe {

namespace {

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", s);
  return buf;
}

}  // namespace

void Liveness::on_snapshot(const SnapshotPtr&) {
  last_tick_ns_.store(steady_ns(), std::memory_order_relaxed);
}

HealthAnswer Liveness::answer() const {
  int64_t last = last_tick_ns_.load(std::memory_order_relaxed);
  std::optional<std::chrono::nanoseconds> age;
  if (last >= 0) age = std::chrono::nanoseconds(steady_ns() - last);
  return judge(age, interval_);
}

HealthAnswer Liveness::judge(std::optional<std::chrono::nanoseconds> age,
                             std::chrono::milliseconds interval) {
  const double interval_s = std::chrono::duration<double>(interval).count();
  const std::string of_interval = " (interval " + seconds_text(interval_s) + " s)";
  if (!age) return {503, "no tick yet" + of_interval + "\n"};
  if (*age > 3 * interval) {
    double age_s = std::chrono::duration<double>(*age).count();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", age_s);
    return {503, "no tick for " + std::string(buf) + " s" + of_interval + "\n"};
  }
  return {200, "ok\n"};
}

}  // namespace wattprobe
