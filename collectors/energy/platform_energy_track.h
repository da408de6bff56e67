#pragma once

namespace wattprobe {

/// Turns a BMC's slow readings into a counter that moves every tick and never goes back.
/// Power: a reading holds from its time until the next one. Counter: between two steps the
/// energy advances at the last known rate (the BMC's power, else the last two steps' rate) and
/// at a step takes the counter's value; what was advanced too far is taken back by holding the
/// total until the counter passes it, never by going down. Times are seconds on one clock.
class PlatformEnergyTrack {
 public:
  void power(double watts, double at_s, double now_s);
  /// `joules`: the counter; a value below the last one is a reset and starts a new base.
  void counter(double joules, double at_s, double now_s);
  /// The rate between counter steps, from the BMC's own power reading.
  void rate_hint(double watts) { hint_watts_ = watts; }
  /// The total at `now_s`, monotonic across calls.
  double energy(double now_s);
  bool has_reading() const { return have_; }
  /// Seconds between the last two counter steps; 0 before two steps.
  double step_interval() const { return step_interval_; }
  /// When the counter last changed (seconds), for the stall rule.
  double last_step_s() const { return step_at_; }
  double watts() const { return watts_; }

 private:
  double truth(double now_s) const;
  bool have_ = false;
  bool is_counter_ = false;
  double base_ = 0;     // energy booked up to at_
  double at_ = 0;       // time of the last reading (power) or step (counter)
  double watts_ = 0;    // power in force from at_
  double counter_ = 0;  // counter's last value
  double step_at_ = 0;
  double step_interval_ = 0;
  double hint_watts_ = -1;
  double reported_ = 0;
};

}  // namespace wattprobe
