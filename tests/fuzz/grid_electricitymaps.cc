// Electricity Maps answers (v3 latest and forecast), then the checks every answer goes
// through before its zone and forecast become series.
#include "agent/carbon/grid/electricitymaps.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  std::string_view body = fuzz::text(data, size);
  GridFetch latest =
      parse_electricitymaps_latest(body, "http://127.0.0.1/v3/carbon-intensity/latest");
  if (latest.reading) {
    auto points =
        parse_electricitymaps_forecast(body, "http://127.0.0.1/v3/carbon-intensity/forecast");
    if (points.ok()) latest.reading->forecast = std::move(*points);
  }
  GridFetch bounded = bound_fetch(std::move(latest));
  if (bounded.reading && bounded.reading->forecast.size() > kMaxForecastPoints) __builtin_trap();
  return 0;
}
