// National Grid ESO's carbonintensity.org.uk answers (half-hour periods, forecast, actual).
#include "agent/carbon/grid/carbonintensity_uk.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  GridFetch f =
      bound_fetch(parse_carbonintensity_uk(fuzz::text(data, size), "http://127.0.0.1/intensity"));
  if (f.reading && f.reading->forecast.size() > kMaxForecastPoints) __builtin_trap();
  return 0;
}
