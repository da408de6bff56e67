// The Prometheus text exposition parser `wattprobe top` reads an agent's /metrics with, and
// the snapshot it makes of what parses.
#include "agent/base/exposition_text.h"

#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  auto families = parse_exposition_text(fuzz::text(data, size), "http://127.0.0.1/metrics");
  if (families.ok()) (void)to_snapshot_families(std::move(*families));
  return 0;
}
