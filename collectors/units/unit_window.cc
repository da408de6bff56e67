#include "collectors/units/unit_window.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wattprobe {

void UnitWindow::add(const UnitPoint& point, bool read_ok, bool counter_reset) {
  if (!points_.empty() && point.t_ms < points_.back().t_ms) return;  // never out of order
  const bool counted = !points_.empty() && point.units > points_.back().units;
  points_.push_back(point);
  // Keep one point at or before the window's start, so the window spans all of it.
  while (points_.size() > 2 && points_[1].t_ms <= point.t_ms - window_ms_) points_.pop_front();
  const bool any = points_.back().units > points_.front().units;
  if (!read_ok || counter_reset || !any) {
    steady_since_.reset();
  } else if (!steady_since_ && counted) {
    steady_since_ = points_[points_.size() - 2].t_ms;
  }
}

const UnitPoint& UnitWindow::at(int64_t t) const {
  auto it = std::upper_bound(points_.begin(), points_.end(), t,
                             [](int64_t v, const UnitPoint& p) { return v < p.t_ms; });
  return it == points_.begin() ? *it : *std::prev(it);
}

UnitFigures UnitWindow::figures() const {
  UnitFigures out;
  if (points_.size() < 2 || points_.back().units <= points_.front().units) {
    out.reason = "no_units";
    out.detail = "no units counted in the window";
    return out;
  }
  const UnitPoint& first = points_.front();
  const UnitPoint& last = points_.back();
  const double units = last.units - first.units;
  const double whole = (last.joules - first.joules) / units;
  out.joules_per_unit = whole;
  out.grams_per_unit = (last.grams - first.grams) / units;
  const double joules = last.joules - first.joules;
  if (joules > 0) {
    out.shared_gpu_ratio =
        std::clamp((last.shared_gpu_joules - first.shared_gpu_joules) / joules, 0.0, 1.0);
  }

  const int64_t steady_ms = steady_since_ ? last.t_ms - *steady_since_ : 0;
  char buf[160];
  if (steady_ms < steadiness_.min_steady_ms) {
    std::snprintf(buf, sizeof buf, "%.1f s of ticks with units, %.0f s needed", steady_ms / 1e3,
                  steadiness_.min_steady_ms / 1e3);
    out.reason = "warming_up";
    out.detail = buf;
    return out;
  }
  if (units < steadiness_.min_units) {
    std::snprintf(buf, sizeof buf, "%.0f units in the window, %.0f needed", units,
                  steadiness_.min_units);
    out.reason = "few_units";
    out.detail = buf;
    return out;
  }
  const int64_t span = last.t_ms - first.t_ms;
  for (int q = 0; q < 4; ++q) {
    const UnitPoint& a = q == 0 ? first : at(first.t_ms + span * q / 4);
    const UnitPoint& b = q == 3 ? last : at(first.t_ms + span * (q + 1) / 4);
    const double du = b.units - a.units;
    const double figure = du > 0 ? (b.joules - a.joules) / du : INFINITY;
    const double spread =
        whole != 0 ? std::fabs(figure - whole) / std::fabs(whole) : (figure == 0 ? 0 : INFINITY);
    if (!(spread <= steadiness_.max_quarter_spread)) {
      if (du > 0) {
        std::snprintf(buf, sizeof buf,
                      "quarter %d of the window: %.4g J per unit, %.1f %% from the window's %.4g",
                      q + 1, figure, spread * 100, whole);
      } else {
        std::snprintf(buf, sizeof buf, "quarter %d of the window counted no units", q + 1);
      }
      out.reason = "unsteady";
      out.detail = buf;
      return out;
    }
  }
  out.stable = true;
  out.reason = "steady";
  return out;
}

}  // namespace wattprobe
