#include "agent/tick/idle_power.h"

#include <algorithm>
#include <cmath>

namespace wattprobe {
namespace {

double median(std::vector<double>& v) {
  auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  double hi = *mid;
  if (v.size() % 2 == 1) return hi;
  return (hi + *std::max_element(v.begin(), mid)) / 2;
}

}  // namespace

void IdlePowerEstimator::observe(double u, double p) {
  if (!std::isfinite(u) || !std::isfinite(p) || p < 0) return;
  u = std::clamp(u, 0.0, 1.0);
  ++ticks_;
  low_w_ *= kDecay;
  low_sp_ *= kDecay;
  if (u <= kLowUtilisation) {
    low_w_ += 1;
    low_sp_ += p;
  }
  max_power_ = std::max(max_power_ * kDecay, p);

  int b = std::min(kBins - 1, static_cast<int>(u * kBins));
  Point point{u, p, ticks_};
  if (bins_[b].size() < kPerBin) {
    bins_[b].push_back(point);
  } else {
    bins_[b][next_[b]] = point;
    next_[b] = (next_[b] + 1) % kPerBin;
  }
  // An override makes the fit moot; skipping it keeps such rows free.
  regression_ = override_ ? std::nullopt : fit();
}

std::optional<double> IdlePowerEstimator::fit() const {
  std::vector<Point> pts;
  for (const auto& bin : bins_) {
    for (const Point& q : bin)
      if (ticks_ - q.tick < kMaxAgeTicks) pts.push_back(q);
  }
  if (pts.size() < 4) return std::nullopt;
  double mu = 0, uu = 0;
  for (const Point& q : pts) mu += q.u;
  mu /= static_cast<double>(pts.size());
  for (const Point& q : pts) uu += (q.u - mu) * (q.u - mu);
  if (uu / static_cast<double>(pts.size()) < kMinSpread * kMinSpread) return std::nullopt;

  std::vector<double> slopes;
  slopes.reserve(pts.size() * pts.size() / 2);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    for (std::size_t j = i + 1; j < pts.size(); ++j) {
      double du = pts[j].u - pts[i].u;
      if (std::abs(du) >= kMinSpread) slopes.push_back((pts[j].p - pts[i].p) / du);
    }
  }
  if (slopes.size() < 3) return std::nullopt;
  double slope = median(slopes);
  if (slope < 0) return std::nullopt;  // power falling with load: not a usable line
  // The intercept from the points nearest idle where there are enough of them: a slope a few
  // percent off moves each point's P - slope·u by that error times its u, so points at u ≈ 0.5
  // would carry it into the idle figure ten times as much as points at u ≤ 0.1 do.
  std::vector<double> intercepts;
  intercepts.reserve(pts.size());
  for (const Point& q : pts)
    if (q.u <= kLowUtilisation) intercepts.push_back(q.p - slope * q.u);
  if (intercepts.size() < kMinNearIdle) {
    intercepts.clear();
    for (const Point& q : pts) intercepts.push_back(q.p - slope * q.u);
  }
  return std::clamp(median(intercepts), 0.0, max_power_);
}

std::optional<double> IdlePowerEstimator::idle_watts() const {
  if (override_) return *override_;
  if (regression_) return regression_;
  if (low_w_ > 0) return std::clamp(low_sp_ / low_w_, 0.0, max_power_);
  return std::nullopt;
}

std::string IdlePowerEstimator::method() const {
  if (override_) return "override";
  if (regression_) return "regression";
  return low_w_ > 0 ? "low_utilisation" : "none";
}

}  // namespace wattprobe
