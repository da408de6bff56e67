// The one-value files of powercap (energy_uj, max_energy_range_uj, zone names), hwmon
// (energy*_input, power*_average), perf's power PMU (event config, scale, unit), CPU lists,
// /proc/stat and /proc/cpuinfo: the input goes to every one of their parsers.
#include "agent/base/text_file.h"
#include "collectors/cpu/cpu_topology.h"
#include "collectors/cpu/proc_stat.h"
#include "collectors/energy/rapl_msr.h"
#include "collectors/energy/rapl_perf.h"
#include "collectors/energy/rapl_powercap.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  std::string_view in = fuzz::text(data, size);
  const std::filesystem::path file = "/sys/class/powercap/intel-rapl:0/energy_uj";
  (void)parse_u64(in, file);
  (void)parse_i64(in, file);
  (void)parse_double(in, file);
  (void)parse_rapl_zone_name(in);
  (void)parse_perf_event_config(in, file);
  (void)parse_perf_event_scale(in, file);
  (void)parse_perf_event_unit(in, file);
  (void)parse_cpu_list(in, file);
  (void)parse_cpu_stat(in, file);
  (void)parse_cpuinfo(in, file);
  return 0;
}
