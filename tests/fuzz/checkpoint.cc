// Checkpoint files (frame, CRC, protobuf payload, every field). A file that decodes must
// encode to bytes that decode to the same totals again.
#include "agent/state/checkpoint.h"

#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  auto decoded = decode_checkpoint(fuzz::text(data, size));
  if (auto* state = std::get_if<CheckpointState>(&decoded)) {
    std::string again = encode_checkpoint(*state);
    auto second = decode_checkpoint(again);
    auto* back = std::get_if<CheckpointState>(&second);
    if (!back || encode_checkpoint(*back) != again) __builtin_trap();
  }
  return 0;
}
