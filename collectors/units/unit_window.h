#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

namespace wattprobe {

/// One tick of a unit: what its workloads had used and its counter had counted so far.
struct UnitPoint {
  int64_t t_ms = 0;   // a steady clock
  double joules = 0;  // host energy of the matched workloads, summed over their ticks
  double grams = 0;   // their operational + embodied CO2e, likewise
  double units = 0;   // the unit's reset-handled total
  /// The part of `joules` split on a GPU that several processes share: the split's estimate.
  double shared_gpu_joules = 0;
};

/// When a window counts as steady (ML.ENERGY's benchmark calls a J/token figure unstable under
/// 20 s of steady state; aitra-meter flags windows whose J/token varies by more than 3 %).
struct UnitSteadiness {
  int64_t min_steady_ms = 20000;     // ticks with units, back to back
  double min_units = 100;            // in the window
  double max_quarter_spread = 0.05;  // each quarter's figure against the window's
};

struct UnitFigures {
  /// Over the window; nullopt when it counted no units (never infinity, never 0).
  std::optional<double> joules_per_unit;
  std::optional<double> grams_per_unit;
  /// The window's shared-GPU joules over its joules, 0 to 1 (0 without energy).
  double shared_gpu_ratio = 0;
  bool stable = false;
  /// Why not stable (no_units, warming_up, few_units, unsteady), or "steady"; `detail` says more.
  std::string reason;
  std::string detail;
};

/// The last --unit-window of a unit's points, and the per-unit figures over it.
class UnitWindow {
 public:
  explicit UnitWindow(int64_t window_ms, UnitSteadiness steadiness = {})
      : window_ms_(window_ms), steadiness_(steadiness) {}

  /// `read_ok`: the unit's counter was read this tick. A failed read or a restart of the counter
  /// breaks the run of steady ticks.
  void add(const UnitPoint& point, bool read_ok, bool counter_reset);
  UnitFigures figures() const;

 private:
  /// The point at or just before `t` (the first one when none is).
  const UnitPoint& at(int64_t t) const;

  int64_t window_ms_;
  UnitSteadiness steadiness_;
  std::deque<UnitPoint> points_;
  std::optional<int64_t> steady_since_;
};

}  // namespace wattprobe
