// /proc/<pid>/cgroup texts, then the path found in them to a workload identity, as procfs
// accounting does for every process.
#include "collectors/cpu/procfs_accounting.h"
#include "collectors/identity/cgroup_resolver.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto path = wattprobe::cgroup_path_in_proc_cgroup(wattprobe::fuzz::text(data, size));
  if (path) {
    wattprobe::WorkloadId id = wattprobe::identity_from_cgroup_path(*path);
    (void)id.workload.size();
  }
  return 0;
}
