#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wattprobe {

/// Learns one domain's idle power from the host's own ticks.
///
/// Estimator (docs/methodology.md, "The idle estimator"): every tick's (utilisation u, power P)
/// pair goes to a reservoir of 10 utilisation bins (0-10 %, ..., 90-100 %) that keep their last
/// 16 pairs each, for at most an hour of ticks, so a long busy stretch never pushes the idle
/// points out. Once u varies over the reservoir (standard deviation ≥ 5 points), idle is the
/// Theil-Sen line's intercept at u = 0: the slope is the median of the slopes between pairs at
/// least 5 points of u apart, the intercept the median of P − slope·u over the points at u ≤ 10 %
/// (over all points while fewer than 3 lie there). Medians shrug off the
/// ticks whose u and P disagree (a tick boundary inside a load step, an idle CPU accounted late)
/// that pulled the least-squares line before. Until then, it is the forgotten mean of P over
/// low-utilisation ticks (u ≤ 10 %). With no such tick yet, idle is unknown and all energy is
/// dynamic. An --idle-watts override wins.
class IdlePowerEstimator {
 public:
  void observe(double utilisation, double watts);
  /// Idle watts, or nullopt while unknown. Never negative, never above the highest recent power.
  std::optional<double> idle_watts() const;
  /// "override", "regression", "low_utilisation" or "none".
  std::string method() const;
  void set_override(double watts) { override_ = watts; }

 private:
  std::optional<double> fit() const;

  struct Point {
    double u = 0, p = 0;
    uint64_t tick = 0;
  };
  static constexpr int kBins = 10;
  static constexpr std::size_t kPerBin = 16;
  static constexpr uint64_t kMaxAgeTicks = 3600;
  static constexpr double kMinSpread = 0.05;  // of u, for the line and for a pair's slope
  static constexpr double kDecay = 0.99885;   // 0.5^(1/600): the low-utilisation mean
  static constexpr double kLowUtilisation = 0.10;
  static constexpr std::size_t kMinNearIdle = 3;  // points at u ≤ 10 % that anchor the intercept

  std::array<std::vector<Point>, kBins> bins_;
  std::array<std::size_t, kBins> next_{};  // the slot each full bin overwrites next
  uint64_t ticks_ = 0;
  std::optional<double> regression_;  // refitted at each observe
  double low_w_ = 0, low_sp_ = 0;
  double max_power_ = 0;
  std::optional<double> override_;
};

}  // namespace wattprobe
