#include "collectors/cpu/workload_table.h"

#include <functional>
#include <utility>

namespace wattprobe {

WorkloadTable::WorkloadTable(std::size_t max_workloads, std::size_t idle_ticks_to_forget)
    : max_workloads_(max_workloads), idle_ticks_to_forget_(idle_ticks_to_forget) {
  index_.reserve(max_workloads_ < 4096 ? max_workloads_ : 4096);
}

std::optional<std::size_t> WorkloadTable::add(const WorkloadId& id, uint64_t cpu_ns,
                                              uint64_t cycles, uint64_t instructions) {
  std::size_t slot;
  auto it = index_.find(id);
  if (it != index_.end()) {
    slot = it->second;
  } else {
    if (index_.size() >= max_workloads_) {
      refused_ns_ += cpu_ns;
      refused_this_tick_.insert(WorkloadIdHash{}(id));
      return std::nullopt;
    }
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      slot = slots_.size();
      slots_.emplace_back();
    }
    Slot& s = slots_[slot];
    s = Slot{};
    s.id = id;
    s.used = true;
    index_.emplace(id, slot);
  }
  Slot& s = slots_[slot];
  if (!s.touched) {
    s.touched = true;
    touched_.push_back(slot);
  }
  s.cpu_ns += cpu_ns;
  s.cycles += cycles;
  s.instructions += instructions;
  return slot;
}

void WorkloadTable::finish(CpuTick& out) {
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::vector<std::size_t> tick_index(slots_.size(), kNone);
  for (std::size_t slot : touched_) {
    Slot& s = slots_[slot];
    s.touched = false;
    if (s.cpu_ns == 0) continue;
    tick_index[slot] = out.workloads.size();
    out.workloads.push_back(WorkloadCpu{s.id, s.cpu_ns, s.cycles, s.instructions});
    s.cpu_ns = s.cycles = s.instructions = 0;
  }
  touched_.clear();

  std::size_t kept = 0;
  for (std::size_t i = 0; i < out.processes.size(); ++i) {
    ProcessCpu& p = out.processes[i];
    if (p.workload >= tick_index.size() || tick_index[p.workload] == kNone) continue;
    p.workload = tick_index[p.workload];
    if (kept != i) out.processes[kept] = std::move(p);
    ++kept;
  }
  out.processes.resize(kept);

  out.unaccounted_ns += refused_ns_;
  out.workloads_dropped += refused_this_tick_.size();
  refused_ns_ = 0;
  refused_this_tick_.clear();

  // Aging walks every slot once per tick: the table is capped, so this is bounded too.
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    Slot& s = slots_[slot];
    if (!s.used) continue;
    if (tick_index[slot] != kNone) {
      s.idle_ticks = 0;
    } else if (++s.idle_ticks >= idle_ticks_to_forget_) {
      index_.erase(s.id);
      s = Slot{};
      free_.push_back(slot);
    }
  }
}

}  // namespace wattprobe
