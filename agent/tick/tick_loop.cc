#include "agent/tick/tick_loop.h"

namespace wattprobe {

void TickLoop::request_stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  wake_.notify_all();
}

void TickLoop::run(const std::function<void(double seconds)>& tick) {
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  auto next = last;
  uint64_t ticks = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (wake_.wait_until(lock, next, [&] { return stop_; })) return;
    }
    auto start = clock::now();
    tick(std::chrono::duration<double>(start - last).count());
    last = start;
    self_.record_tick(clock::now() - start);
    if (options_.max_ticks && ++ticks >= options_.max_ticks) return;
    next += options_.interval;
    // After a stall (suspend, an overloaded host) resume the cadence instead of catching up
    // with a burst of back-to-back ticks.
    if (next < clock::now()) next = clock::now() + options_.interval;
  }
}

}  // namespace wattprobe
