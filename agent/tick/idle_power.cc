#include "agent/tick/idle_power.h"

#include <algorithm>
#include <cmath>

namespace wattprobe {

void IdlePowerEstimator::observe(double u, double p) {
  if (!std::isfinite(u) || !std::isfinite(p) || p < 0) return;
  u = std::clamp(u, 0.0, 1.0);
  w_ = w_ * kDecay + 1;
  su_ = su_ * kDecay + u;
  sp_ = sp_ * kDecay + p;
  suu_ = suu_ * kDecay + u * u;
  sup_ = sup_ * kDecay + u * p;
  low_w_ *= kDecay;
  low_sp_ *= kDecay;
  if (u <= kLowUtilisation) {
    low_w_ += 1;
    low_sp_ += p;
  }
  max_power_ = std::max(max_power_ * kDecay, p);
}

std::optional<double> IdlePowerEstimator::regression_intercept() const {
  if (w_ <= 0) return std::nullopt;
  double mu = su_ / w_;
  double var = suu_ / w_ - mu * mu;
  if (var < 0.05 * 0.05) return std::nullopt;
  double mp = sp_ / w_;
  double slope = (sup_ / w_ - mu * mp) / var;
  if (slope < 0) return std::nullopt;  // power falling with load: not a usable line
  return std::clamp(mp - slope * mu, 0.0, max_power_);
}

std::optional<double> IdlePowerEstimator::idle_watts() const {
  if (override_) return *override_;
  if (auto a = regression_intercept()) return a;
  if (low_w_ > 0) return std::clamp(low_sp_ / low_w_, 0.0, max_power_);
  return std::nullopt;
}

std::string IdlePowerEstimator::method() const {
  if (override_) return "override";
  if (regression_intercept()) return "regression";
  return low_w_ > 0 ? "low_utilisation" : "none";
}

}  // namespace wattprobe
