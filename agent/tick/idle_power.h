#pragma once

#include <optional>
#include <string>

namespace wattprobe {

/// Learns one domain's idle power from the host's own ticks.
///
/// Estimator (documented in README "Idle power"): every tick adds (utilisation u, power P) to
/// exponentially forgotten sums (half-life ~10 min at 1 s ticks). Once utilisation has varied
/// (weighted standard deviation ≥ 5 points), idle is the intercept at u = 0 of the least-squares
/// line P = idle + slope·u — the linear power model SPECpower curves and Cloud Carbon Footprint
/// use. Until then, it is the forgotten mean of P over low-utilisation ticks (u ≤ 10 %). With no
/// such tick yet, idle is unknown and all energy is dynamic. An --idle-watts override wins.
class IdlePowerEstimator {
 public:
  void observe(double utilisation, double watts);
  /// Idle watts, or nullopt while unknown. Never negative, never above the highest recent power.
  std::optional<double> idle_watts() const;
  /// "override", "regression", "low_utilisation" or "none".
  std::string method() const;
  void set_override(double watts) { override_ = watts; }

 private:
  std::optional<double> regression_intercept() const;

  static constexpr double kDecay = 0.99885;  // 0.5^(1/600)
  static constexpr double kLowUtilisation = 0.10;
  double w_ = 0, su_ = 0, sp_ = 0, suu_ = 0, sup_ = 0;
  double low_w_ = 0, low_sp_ = 0;
  double max_power_ = 0;
  std::optional<double> override_;
};

}  // namespace wattprobe
