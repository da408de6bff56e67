// Ledger lines as `wattprobe report` reads them, one per input line.
#include "agent/cli/report.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all = wattprobe::fuzz::text(data, size);
  while (!all.empty()) {
    auto nl = all.find('\n');
    (void)wattprobe::parse_ledger_line(std::string(all.substr(0, nl)));
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
  }
  return 0;
}
