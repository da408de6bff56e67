#include "agent/carbon/intensity_history.h"

#include <algorithm>

namespace wattprobe {
namespace {

int64_t minute_of(int64_t ms) { return ms / 60000 - (ms % 60000 < 0 ? 1 : 0); }

}  // namespace

void IntensityHistory::close_minute() {
  if (open_minute_ < 0 || open_covered_ms_ <= 0) return;
  const double mean = open_integral_ / static_cast<double>(open_covered_ms_);
  // Ticks meet within a few milliseconds, not exactly; a longer gap (the agent stopped) stays.
  if (!spans_.empty() && spans_.back().end_ms >= open_start_ms_ - kJoinGapMs &&
      spans_.back().grams_per_kwh == mean) {
    spans_.back().end_ms = open_end_ms_;
  } else {
    spans_.push_back({open_start_ms_, open_end_ms_, mean});
  }
  while (!spans_.empty() && spans_.front().end_ms < open_end_ms_ - keep_ms_) spans_.pop_front();
  open_minute_ = -1;
}

void IntensityHistory::record(int64_t from_ms, int64_t to_ms, double grams_per_kwh) {
  if (to_ms <= from_ms) return;
  std::lock_guard lock(mu_);
  // A tick that crosses a minute boundary is split, so each minute's mean is its own.
  while (from_ms < to_ms) {
    const int64_t minute = minute_of(from_ms);
    const int64_t until = std::min(to_ms, (minute + 1) * 60000);
    if (minute != open_minute_) {
      close_minute();
      open_minute_ = minute;
      open_start_ms_ = from_ms;
      open_integral_ = 0;
      open_covered_ms_ = 0;
    }
    open_integral_ += grams_per_kwh * static_cast<double>(until - from_ms);
    open_covered_ms_ += until - from_ms;
    open_end_ms_ = until;
    from_ms = until;
  }
}

std::vector<IntensityHistory::Span> IntensityHistory::between(int64_t from_ms,
                                                              int64_t to_ms) const {
  std::vector<Span> all;
  {
    std::lock_guard lock(mu_);
    all.assign(spans_.begin(), spans_.end());
    if (open_minute_ >= 0 && open_covered_ms_ > 0) {
      const Span open{open_start_ms_, open_end_ms_,
                      open_integral_ / static_cast<double>(open_covered_ms_)};
      // Joined as close_minute() will join it.
      if (!all.empty() && all.back().end_ms >= open.start_ms - kJoinGapMs &&
          all.back().grams_per_kwh == open.grams_per_kwh) {
        all.back().end_ms = open.end_ms;
      } else {
        all.push_back(open);
      }
    }
  }
  std::vector<Span> out;
  for (Span s : all) {
    s.start_ms = std::max(s.start_ms, from_ms);
    s.end_ms = std::min(s.end_ms, to_ms);
    if (s.end_ms > s.start_ms) out.push_back(s);
  }
  return out;
}

std::optional<double> IntensityHistory::mean(int64_t from_ms, int64_t to_ms) const {
  double integral = 0;
  int64_t covered = 0;
  for (const auto& s : between(from_ms, to_ms)) {
    integral += s.grams_per_kwh * static_cast<double>(s.end_ms - s.start_ms);
    covered += s.end_ms - s.start_ms;
  }
  if (covered == 0) return std::nullopt;
  return integral / static_cast<double>(covered);
}

std::size_t IntensityHistory::size() const {
  std::lock_guard lock(mu_);
  return spans_.size() + (open_minute_ >= 0 ? 1 : 0);
}

}  // namespace wattprobe
