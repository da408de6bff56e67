// Checkpoint files (frame, CRC, protobuf payload, every field). An input whose first byte is
// odd is a whole file (checkpoints start with "W"); an even first byte frames the rest as the
// payload with a right CRC, so mutations reach the payload's checks instead of the checksum.
// A file that decodes must encode to bytes that decode to the same totals again.
#include "agent/state/checkpoint.h"

#include <zlib.h>

#include "tests/fuzz/fuzz_input.h"

namespace {

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::string framed(std::string_view payload) {
  std::string file = "WPCK";
  put_le(file, wattprobe::kCheckpointFormatVersion, 4);
  put_le(file, payload.size(), 8);
  uLong crc = crc32(0L, Z_NULL, 0);
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(file.data() + 4), 12);
  crc = crc32_z(crc, reinterpret_cast<const Bytef*>(payload.data()), payload.size());
  put_le(file, crc, 4);
  file.append(payload);
  return file;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  if (size == 0) return 0;
  std::string_view in = fuzz::text(data, size);
  std::string file = (data[0] & 1) ? std::string(in) : framed(in.substr(1));
  auto decoded = decode_checkpoint(file);
  if (auto* state = std::get_if<CheckpointState>(&decoded)) {
    std::string again = encode_checkpoint(*state);
    auto second = decode_checkpoint(again);
    auto* back = std::get_if<CheckpointState>(&second);
    if (!back || encode_checkpoint(*back) != again) __builtin_trap();
  }
  return 0;
}
