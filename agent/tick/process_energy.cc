#include "agent/tick/process_energy.h"

#include <algorithm>
#include <tuple>

namespace wattprobe {
namespace {

/// comm is whatever 15 bytes a process chose; as a label value it must be printable.
void assign_printable(std::string& out, std::string_view comm) {
  out.assign(comm);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
}

}  // namespace

ProcessEnergy::ProcessEnergy(std::size_t top, std::chrono::milliseconds expiry)
    : top_(top), cap_(std::max<std::size_t>(4 * top, 256)), expiry_(expiry) {}

void ProcessEnergy::add(const CpuTick& cpu, std::span<const double> workload_joules,
                        int64_t now_ms) {
  for (const ProcessCpu& p : cpu.processes) {
    if (p.workload >= cpu.workloads.size() || p.workload >= workload_joules.size()) continue;
    const WorkloadCpu& w = cpu.workloads[p.workload];
    double joules = w.cpu_ns > 0 ? workload_joules[p.workload] * (static_cast<double>(p.cpu_ns) /
                                                                  static_cast<double>(w.cpu_ns))
                                 : 0.0;
    auto [it, inserted] = by_pid_.try_emplace(p.pid);
    Total& t = it->second;
    if (!inserted && p.start_time_ns != t.start_time_ns) {
      // The last slice of the process that held this pid before arrives in the same tick as its
      // successor: the successor's series is the one to keep.
      if (p.start_time_ns < t.start_time_ns) continue;
      t = Total{};
    }
    t.pid = p.pid;
    t.start_time_ns = p.start_time_ns;
    if (inserted || t.comm.size() != p.comm.size() || t.comm != p.comm)
      assign_printable(t.comm, p.comm);
    if (t.workload != w.id.workload) t.workload = w.id.workload;
    t.joules += joules;
    t.last_seen_ms = now_ms;
  }
  std::erase_if(by_pid_,
                [&](const auto& kv) { return now_ms - kv.second.last_seen_ms > expiry_.count(); });
  enforce_cap();
}

void ProcessEnergy::add_gpu(uint32_t pid, const std::string& comm, const std::string& workload,
                            double joules, int64_t now_ms) {
  // NVML names a process by pid alone: the entry holding the pid is taken to be it (a pid reused
  // within one tick would be charged to the older process's series until it expires).
  auto [it, inserted] = by_pid_.try_emplace(pid);
  Total& t = it->second;
  t.pid = pid;
  if (inserted || t.comm.empty()) assign_printable(t.comm, comm);
  if (t.workload.empty()) t.workload = workload;
  t.joules += joules;
  t.last_seen_ms = now_ms;
  enforce_cap();
}

void ProcessEnergy::enforce_cap() {
  if (by_pid_.size() <= cap_) return;
  std::vector<const Total*> all;
  all.reserve(by_pid_.size());
  for (const auto& [pid, t] : by_pid_) all.push_back(&t);
  std::size_t excess = all.size() - cap_;
  std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(excess), all.end(),
                   [](const Total* a, const Total* b) {
                     return std::tie(a->joules, a->last_seen_ms, a->pid) <
                            std::tie(b->joules, b->last_seen_ms, b->pid);
                   });
  std::vector<uint32_t> gone;
  gone.reserve(excess);
  for (std::size_t i = 0; i < excess; ++i) gone.push_back(all[i]->pid);
  for (uint32_t pid : gone) by_pid_.erase(pid);
  evicted_ += excess;
  // After a burst of short-lived processes, give the bucket array back too.
  if (by_pid_.bucket_count() > 8 * cap_) by_pid_.rehash(0);
}

std::vector<ProcessEnergy::Total> ProcessEnergy::top() const {
  std::vector<const Total*> all;
  all.reserve(by_pid_.size());
  for (const auto& [pid, t] : by_pid_) all.push_back(&t);
  std::size_t n = std::min(top_, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n), all.end(),
                    [](const Total* a, const Total* b) {
                      if (a->joules != b->joules) return a->joules > b->joules;
                      return a->pid < b->pid;
                    });
  std::vector<Total> out;
  out.reserve(n);
  for (std::size_t i = 0; i < n; ++i) out.push_back(*all[i]);
  return out;
}

void ProcessEnergy::append_families(std::vector<Family>& out) const {
  Family energy{"wattprobe_process_energy_joules_total",
                "Energy attributed to a process (its share of its workload's CPU time, plus its "
                "own share of each GPU it used), summed over the host's non-overlapping domains; "
                "only the top --process-metrics-top processes by energy.",
                MetricType::counter,
                {}};
  std::vector<Total> top_n = top();
  energy.series.reserve(top_n.size());
  for (Total& t : top_n) {
    energy.series.push_back({{{"pid", std::to_string(t.pid)},
                              {"comm", std::move(t.comm)},
                              {"workload", std::move(t.workload)}},
                             t.joules});
  }
  out.push_back(std::move(energy));
  out.push_back({"wattprobe_agent_processes_evicted_total",
                 "Processes whose energy total was dropped before they expired, to keep the "
                 "per-process table within its cap (max(4 x --process-metrics-top, 256)).",
                 MetricType::counter,
                 {{{}, static_cast<double>(evicted_)}}});
}

}  // namespace wattprobe
