// The file provider's intensity schedule (--grid-file): CSV or JSON rows of time and value.
#include "agent/carbon/grid/file_provider.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<wattprobe::Error> errors;
  auto points = wattprobe::parse_intensity_schedule(wattprobe::fuzz::text(data, size),
                                                    "/etc/wattprobe/schedule.csv", errors);
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i].time_ms < points[i - 1].time_ms) __builtin_trap();  // promised sorted
  }
  return 0;
}
