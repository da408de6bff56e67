// Cgroup paths to workload identities (services, scopes, pods of both cgroup drivers,
// containers of every runtime's naming), and the labels the identity becomes.
#include "agent/base/workload_id.h"
#include "collectors/identity/cgroup_resolver.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wattprobe::WorkloadId id =
      wattprobe::identity_from_cgroup_path(wattprobe::fuzz::text(data, size));
  auto labels = wattprobe::workload_labels(id);
  (void)labels.size();
  return 0;
}
