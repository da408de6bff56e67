// Remote-write disk-queue segments as a restart replays them: the input is the first segment
// file (records of magic, length, sample count, CRC and payload; torn or rotten ones skipped).
// Whatever replay keeps must come back whole from peek.
#include "exporters/disk_queue.h"

#include <fstream>

#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  const std::filesystem::path dir = fuzz::scratch() / "queue";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    std::ofstream out(dir / "00000000000000000000.seg", std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  DiskQueueOptions o;
  o.dir = dir;
  o.max_bytes = 1 << 20;
  o.segment_bytes = 1 << 18;
  o.fsync_each_append = false;
  auto q = DiskQueue::open(o);
  if (!q.ok()) return 0;
  DiskQueueStats st = (*q)->stats();
  QueueBatch b = (*q)->peek(SIZE_MAX);
  if (b.payloads.size() != st.records || b.samples != st.samples) __builtin_trap();
  return 0;
}
