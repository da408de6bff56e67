// A Retry-After header line as curl hands it over (grid APIs, remote-write and OTLP receivers):
// any answer is either refused or a delay of 0 s to a year, which callers cap again.
#include "agent/base/http_client.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  std::string_view line = fuzz::text(data, size);
  auto in_range = [](std::optional<int64_t> s) {
    return !s || (*s >= 0 && *s <= kMaxRetryAfterSeconds);
  };
  // The whole line, then the input as the value behind the header name, as a server sends it.
  if (!in_range(parse_retry_after_header(line))) __builtin_trap();
  if (!in_range(parse_retry_after_header("Retry-After: " + std::string(line)))) __builtin_trap();
  return 0;
}
