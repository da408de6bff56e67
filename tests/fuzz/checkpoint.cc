// Checkpoint files (frame, CRC, protobuf payload, every field). An input whose first byte is
// odd is a whole file (checkpoints start with "W"); an even first byte frames the rest as the
// payload with a right CRC, so mutations reach the payload's checks instead of the checksum.
// A file that decodes must encode to bytes that decode to the same totals again.
#include "agent/state/checkpoint.h"

#include <zlib.h>

#include <cstdio>

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

bool same_grams(const wattprobe::CarbonGrams& a, const wattprobe::CarbonGrams& b) {
  return a.operational == b.operational && a.embodied == b.embodied && a.cfe_joules == b.cfe_joules;
}

/// Field by field: workload entries come out in hash-map order, so equal totals need not be
/// equal bytes.
bool same(const wattprobe::CheckpointState& a, const wattprobe::CheckpointState& b) {
  if (!(a.host == b.host) || a.written_ms != b.written_ms || a.node.size() != b.node.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.node.size(); ++i) {
    const auto &x = a.node[i], &y = b.node[i];
    if (x.source != y.source || x.domain != y.domain || x.socket != y.socket ||
        x.joules != y.joules || x.measured != y.measured) {
      return false;
    }
  }
  const auto &aa = a.attribution, &ba = b.attribution;
  if (aa.idle_joules != ba.idle_joules || aa.unattributed_joules != ba.unattributed_joules ||
      aa.workloads.size() != ba.workloads.size()) {
    return false;
  }
  for (std::size_t i = 0; i < aa.workloads.size(); ++i) {
    const auto &x = aa.workloads[i], &y = ba.workloads[i];
    if (!(x.id == y.id) || x.cpu_seconds != y.cpu_seconds || x.last_seen_ms != y.last_seen_ms ||
        x.joules != y.joules) {
      return false;
    }
  }
  const auto &ac = a.carbon, &bc = b.carbon;
  if (ac.workloads.size() != bc.workloads.size() || ac.last_seen_ms != bc.last_seen_ms ||
      !same_grams(ac.idle, bc.idle) || ac.unattributed_operational != bc.unattributed_operational ||
      ac.unattributed_cfe_joules != bc.unattributed_cfe_joules) {
    return false;
  }
  for (const auto& [id, g] : ac.workloads) {
    auto it = bc.workloads.find(id);
    if (it == bc.workloads.end() || !same_grams(g, it->second)) return false;
  }
  if (a.budgets.size() != b.budgets.size()) return false;
  for (std::size_t i = 0; i < a.budgets.size(); ++i) {
    const auto &x = a.budgets[i], &y = b.budgets[i];
    if (x.budget.workload != y.budget.workload || x.budget.kind != y.budget.kind ||
        x.budget.window != y.budget.window || x.day_grams != y.day_grams ||
        x.last_day != y.last_day) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  if (size == 0) return 0;
  std::string_view in = fuzz::text(data, size);
  std::string file = (data[0] & 1) ? std::string(in) : framed(in.substr(1));
  auto decoded = decode_checkpoint(file);
  if (auto* state = std::get_if<CheckpointState>(&decoded)) {
    auto second = decode_checkpoint(encode_checkpoint(*state));
    auto* back = std::get_if<CheckpointState>(&second);
    if (!back) {
      std::fprintf(stderr, "re-encoded checkpoint refused: %s\n",
                   std::get<CheckpointFault>(second).detail.c_str());
      __builtin_trap();
    }
    if (!same(*state, *back)) __builtin_trap();
  }
  return 0;
}
