#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/carbon/best_window.h"
#include "agent/carbon/intensity_history.h"

namespace wattprobe {

class HttpEndpoint;

struct CarbonAwareFeed {
  /// The forecast at `now_ms`; called from the server's threads, so it must be thread-safe.
  std::function<ForecastAnswer(int64_t now_ms)> forecast;
  /// The intensities used (not owned; outlives the endpoint).
  const IntensityHistory* history = nullptr;
  /// The agent's own zone, the only location it answers for.
  std::string zone;
  std::function<int64_t()> now;  // the wall clock unless a test sets it
};

/// The Carbon Aware SDK's web API over the agent's own forecast and history, at /emissions/:
/// forecasts/current, bylocation and average-carbon-intensity, in the SDK's JSON shapes.
/// Shared, because the owner (main) must not see the class's base (see above).
std::shared_ptr<HttpEndpoint> make_carbon_aware_api(CarbonAwareFeed feed);

}  // namespace wattprobe
