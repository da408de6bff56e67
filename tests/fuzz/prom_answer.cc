// The JSON answers of a Prometheus query API (Prometheus, Thanos, Mimir, VictoriaMetrics) that
// `wattprobe scorecard` reads: any body parses or is refused, never crashes.
#include "agent/cli/scorecard_query.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  auto answer = parse_prom_answer(fuzz::text(data, size));
  if (answer.ok()) {
    double sum = 0;
    for (const auto& s : answer->samples) sum += s.value + static_cast<double>(s.labels.size());
    (void)sum;
  }
  return 0;
}
