// Job records as `wattprobe report --jobs` reads them (agent/state/job_records.h), one per line.
#include "agent/state/job_records.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view all = wattprobe::fuzz::text(data, size);
  while (!all.empty()) {
    auto nl = all.find('\n');
    (void)wattprobe::parse_job_record(all.substr(0, nl));
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
  }
  return 0;
}
