// Raw bytes sent to the agent's HTTP server: its request parser, limits and target decoding.
#include "exporters/http_request_parser.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = wattprobe::parse_http_request(wattprobe::fuzz::text(data, size));
  if (r) {
    // What an endpoint reads from it.
    (void)r->query_param("location");
    (void)r->header("authorization");
  }
  return 0;
}
