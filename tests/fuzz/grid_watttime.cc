// WattTime answers: the login token and the v3 forecast (units, point times, values).
#include "agent/carbon/grid/watttime.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  std::string_view body = fuzz::text(data, size);
  (void)parse_watttime_login(body, "http://127.0.0.1/login");
  GridFetch f = bound_fetch(parse_watttime_forecast(body, "http://127.0.0.1/v3/forecast"));
  if (f.reading && f.reading->forecast.size() > kMaxForecastPoints) __builtin_trap();
  return 0;
}
