#include "agent/carbon/best_window.h"

#include <algorithm>
#include <cstdio>
#include <ctime>

namespace wattprobe {

std::optional<Forecast> forecast_from_points(std::vector<ForecastPoint> points) {
  std::stable_sort(points.begin(), points.end(),
                   [](const auto& a, const auto& b) { return a.time_ms < b.time_ms; });
  if (points.size() < 2) return std::nullopt;
  Forecast f;
  f.end_ms = points.back().time_ms + (points.back().time_ms - points[points.size() - 2].time_ms);
  f.points = std::move(points);
  return f;
}

Forecast clip_forecast(const Forecast& forecast, int64_t from_ms, int64_t to_ms) {
  Forecast out;
  out.end_ms = std::min(forecast.end_ms, to_ms);
  const auto& p = forecast.points;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const int64_t next = i + 1 < p.size() ? p[i + 1].time_ms : forecast.end_ms;
    if (next <= from_ms) continue;
    if (p[i].time_ms >= out.end_ms) break;
    out.points.push_back({std::max(p[i].time_ms, from_ms), p[i].grams_per_kwh});
  }
  if (out.points.empty()) out.end_ms = 0;
  return out;
}

std::vector<Window> forecast_windows(const Forecast& forecast, int64_t duration_ms) {
  std::vector<Window> out;
  if (duration_ms <= 0) return out;
  const auto& p = forecast.points;
  for (std::size_t i = 0; i < p.size(); ++i) {
    const int64_t start = p[i].time_ms;
    const int64_t end = start + duration_ms;
    if (end > forecast.end_ms) break;
    double sum = 0;
    for (std::size_t j = i; j < p.size() && p[j].time_ms < end; ++j) {
      const int64_t until = std::min(j + 1 < p.size() ? p[j + 1].time_ms : forecast.end_ms, end);
      sum += p[j].grams_per_kwh * static_cast<double>(until - p[j].time_ms);
    }
    out.push_back({start, duration_ms, sum / static_cast<double>(duration_ms)});
  }
  return out;
}

std::optional<Window> best_window(const std::vector<Window>& windows) {
  std::optional<Window> best;
  for (const auto& w : windows) {
    if (!best || w.grams_per_kwh < best->grams_per_kwh) best = w;
  }
  return best;
}

std::string format_rfc3339(int64_t ms) {
  const int64_t secs = ms / 1000 - (ms % 1000 < 0 ? 1 : 0);
  const int64_t frac = ms - secs * 1000;
  time_t t = static_cast<time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  if (frac != 0)
    n += std::snprintf(buf + n, sizeof buf - n, ".%03lld", static_cast<long long>(frac));
  std::snprintf(buf + n, sizeof buf - n, "Z");
  return buf;
}

}  // namespace wattprobe
