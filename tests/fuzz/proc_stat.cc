// /proc/<pid>/stat lines (procfs accounting): comm with spaces and parentheses, 50-odd fields.
#include "collectors/cpu/procfs_accounting.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto st = wattprobe::parse_proc_stat(wattprobe::fuzz::text(data, size), "/proc/1/stat");
  if (st.ok()) (void)st->comm.size();
  return 0;
}
