// Accept-Encoding header values, as /metrics reads them to choose gzip.
#include <string>

#include "exporters/prometheus_pull.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string value(wattprobe::fuzz::text(data, size));
  (void)wattprobe::accepts_gzip(value.c_str());
  return 0;
}
