#include "collectors/energy/counter_stall.h"

#include <time.h>

#include <algorithm>
#include <map>

#include "agent/base/text_file.h"
#include "collectors/cpu/proc_stat.h"

namespace wattprobe {

StallDetector::Change StallDetector::observe(bool advanced, double seconds,
                                             std::optional<double> busy_cpus) {
  if (advanced) {
    busy_ticks_ = 0;
    busy_seconds_ = 0;
    if (!stalled_) return Change::none;
    stalled_ = false;
    return Change::recovered;
  }
  if (stalled_ || !busy_cpus || *busy_cpus < policy_.busy_cpus || !(seconds > 0)) {
    return Change::none;
  }
  ++busy_ticks_;
  busy_seconds_ += seconds;
  if (busy_ticks_ < policy_.min_ticks || busy_seconds_ < policy_.min_busy_seconds) {
    return Change::none;
  }
  stalled_ = true;
  return Change::stalled;
}

StallDetector::Change StallDetector::mark_stalled() {
  if (stalled_) return Change::none;
  stalled_ = true;
  return Change::stalled;
}

bool counter_must_advance(std::string_view domain) {
  return domain == "package" || domain == "core" || domain == "dram" || domain == "psys";
}

bool SourceCheck::all_stalled() const {
  return !counters.empty() && std::all_of(counters.begin(), counters.end(),
                                          [](const CheckedCounter& c) { return c.stalled; });
}

std::vector<std::string> SourceCheck::stalled_descriptions() const {
  std::vector<std::string> out;
  for (const CheckedCounter& c : counters) {
    if (!c.stalled) continue;
    std::string where = c.domain;
    if (c.socket >= 0) where += " socket " + std::to_string(c.socket);
    out.push_back(where + " (" + c.keys + ") stayed at " + std::to_string(c.raw));
  }
  return out;
}

namespace {

int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct RowReads {
  std::vector<std::string> keys;
  std::map<std::string, uint64_t> first;
  bool advanced = false;
  bool compared = false;  // at least one of its counters was read both times
};

}  // namespace

StallEvidence cpu_burst(const HostPaths& paths, std::chrono::milliseconds cpu_time,
                        std::chrono::milliseconds limit) {
  auto before = read_proc_stat(paths);
  const int64_t wall_start = now_ns(CLOCK_MONOTONIC);
  const int64_t cpu_start = now_ns(CLOCK_THREAD_CPUTIME_ID);
  const int64_t cpu_goal = cpu_start + cpu_time.count() * 1'000'000;
  const int64_t wall_limit = wall_start + limit.count() * 1'000'000;
  volatile uint64_t sink = 0;
  while (now_ns(CLOCK_THREAD_CPUTIME_ID) < cpu_goal && now_ns(CLOCK_MONOTONIC) < wall_limit) {
    for (int i = 0; i < 10000; ++i) sink = sink + static_cast<uint64_t>(i);
  }
  StallEvidence e;
  e.seconds = static_cast<double>(now_ns(CLOCK_MONOTONIC) - wall_start) * 1e-9;
  const double used = static_cast<double>(now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_start) * 1e-9;
  e.busy_cpus = e.seconds > 0 ? used / e.seconds : 0;
  auto after = read_proc_stat(paths);
  if (before && after && after->aggregate.total() > before->aggregate.total() &&
      after->aggregate.busy() >= before->aggregate.busy()) {
    const double busy = static_cast<double>(after->aggregate.busy() - before->aggregate.busy());
    const double total = static_cast<double>(after->aggregate.total() - before->aggregate.total());
    e.busy_cpus = std::max(e.busy_cpus, busy / total * after->online_cpus());
  }
  return e;
}

std::vector<SourceCheck> check_counters_advance(const std::vector<EnergySource*>& sources,
                                                const std::function<StallEvidence()>& between) {
  using RowKey = std::pair<std::string, int>;
  std::vector<std::map<RowKey, RowReads>> rows(sources.size());
  std::vector<std::vector<RowKey>> order(sources.size());
  for (std::size_t i = 0; i < sources.size(); ++i) {
    for (const Reading& r : sources[i]->sample().readings) {
      if (r.kind != ReadingKind::energy_counter || !counter_must_advance(r.domain)) continue;
      auto [it, fresh] = rows[i].try_emplace({r.domain, r.socket});
      if (fresh) order[i].push_back(it->first);
      it->second.keys.push_back(r.key);
      it->second.first[r.key] = r.raw;
    }
  }
  std::vector<SourceCheck> out(sources.size());
  // A host with no counter to watch (a VM with only the estimate) is spared the burst.
  if (std::all_of(rows.begin(), rows.end(), [](const auto& r) { return r.empty(); })) return out;
  const StallEvidence evidence = between();
  for (std::size_t i = 0; i < sources.size(); ++i) {
    for (const Reading& r : sources[i]->sample().readings) {
      auto row = rows[i].find({r.domain, r.socket});
      if (row == rows[i].end()) continue;
      auto first = row->second.first.find(r.key);
      if (first == row->second.first.end()) continue;
      row->second.compared = true;
      row->second.advanced = row->second.advanced || first->second != r.raw;
    }
    for (const RowKey& key : order[i]) {
      const RowReads& reads = rows[i][key];
      if (!reads.compared) continue;
      StallDetector detector(StallPolicy::start_up());
      detector.observe(reads.advanced, evidence.seconds, evidence.busy_cpus);
      out[i].counters.push_back({key.first, key.second, join(reads.keys, ","),
                                 reads.first.begin()->second, detector.stalled()});
    }
  }
  return out;
}

}  // namespace wattprobe
