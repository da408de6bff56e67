#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace wattprobe {

/// One forecast value: `grams_per_kwh` holds from `time_ms` until the next point's time.
struct ForecastPoint {
  int64_t time_ms = 0;
  double grams_per_kwh = 0;
};

/// A forecast as a step function: points in time order, each holding until the next, the last
/// until `end_ms`. Kept free of the grid providers' headers so that the HTTP side can use it.
struct Forecast {
  std::vector<ForecastPoint> points;
  int64_t end_ms = 0;
};

/// A forecast from points as a provider publishes them: sorted, and the last point held for the
/// spacing before it (a provider's points are evenly spaced; the file provider's usually are).
/// Fewer than two points tell no spacing: nullopt.
std::optional<Forecast> forecast_from_points(std::vector<ForecastPoint> points);

/// The part of `forecast` between `from_ms` and `to_ms`: the point in force at `from_ms` is moved
/// to start there, so that "now" is a start like any point's. Empty when nothing is left.
Forecast clip_forecast(const Forecast& forecast, int64_t from_ms, int64_t to_ms);

/// The forecast as the API may use it at a moment, or why it may not (the 503's reason).
struct ForecastAnswer {
  std::string zone;
  int64_t generated_ms = 0;  // when the provider answered
  std::optional<Forecast> forecast;
  std::string unusable;  // set when forecast is not
};

struct Window {
  int64_t start_ms = 0;
  int64_t duration_ms = 0;
  double grams_per_kwh = 0;  // the time-weighted mean of the points the window covers
};

/// Every window of `duration_ms` that starts at a point of `forecast` and ends by its end, in
/// time order. The mean sums value × overlap in time order, then divides once, so a test that
/// does the same with whole values gets the same double.
std::vector<Window> forecast_windows(const Forecast& forecast, int64_t duration_ms);

/// The window with the lowest mean; the earliest on a tie. Nullopt when none fits.
std::optional<Window> best_window(const std::vector<Window>& windows);

/// "2026-12-07T09:15:00Z", with ".123" when the time has milliseconds.
std::string format_rfc3339(int64_t ms);

}  // namespace wattprobe
