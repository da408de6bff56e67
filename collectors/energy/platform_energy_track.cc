#include "collectors/energy/platform_energy_track.h"

#include <algorithm>
#include <cmath>

namespace wattprobe {

void PlatformEnergyTrack::power(double watts, double at_s, double now_s) {
  at_s = std::min(at_s, now_s);
  if (!have_) {
    have_ = true;
    is_counter_ = false;
    at_ = at_s;
    watts_ = watts;
    return;
  }
  at_s = std::max(at_s, at_);
  base_ += watts_ * (at_s - at_);
  at_ = at_s;
  watts_ = watts;
}

void PlatformEnergyTrack::counter(double joules, double at_s, double now_s) {
  at_s = std::min(at_s, now_s);
  if (!have_) {
    have_ = true;
    is_counter_ = true;
    counter_ = joules;
    step_at_ = at_ = at_s;
    watts_ = 0;
    return;
  }
  at_s = std::max(at_s, step_at_);
  if (joules > counter_) {
    double gap = at_s - step_at_;
    if (gap > 0) {
      step_interval_ = gap;
      watts_ = (joules - counter_) / gap;
    }
    base_ += joules - counter_;
  }
  // Lower: the counter was reset (a BMC reboot, a ResetMetrics); what it counted before is
  // already booked, and it counts on from its new value.
  if (joules != counter_) {
    counter_ = joules;
    step_at_ = at_ = at_s;
  }
}

double PlatformEnergyTrack::truth(double now_s) const {
  if (!have_) return 0;
  if (!is_counter_) return base_ + watts_ * std::max(0.0, now_s - at_);
  double rate = hint_watts_ >= 0 ? hint_watts_ : watts_;
  // Advance no further than twice the counter's own refresh past its last step (3 minutes
  // before it has stepped twice): a counter that stops must not be made up for ever.
  double horizon = step_interval_ > 0 ? 2 * step_interval_ : 180;
  return base_ + rate * std::clamp(now_s - step_at_, 0.0, horizon);
}

double PlatformEnergyTrack::energy(double now_s) {
  reported_ = std::max(reported_, truth(now_s));
  return reported_;
}

}  // namespace wattprobe
