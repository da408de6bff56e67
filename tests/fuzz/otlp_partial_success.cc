// A receiver's 2xx answer to an OTLP export: the partial-success message whose rejected points
// the agent counts and whose error text it logs (quoted and cut).
#include "exporters/otlp.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  std::string why;
  (void)otlp_rejected_points(fuzz::text(data, size), &why);
  if (why.size() > size) __builtin_trap();  // the message comes from the body, never beyond it
  return 0;
}
