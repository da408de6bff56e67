#include "agent/tick/self_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <iterator>
#include <string>

namespace wattprobe {

void SelfMetrics::record_tick(std::chrono::nanoseconds duration) {
  double s = std::chrono::duration<double>(duration).count();
  last_tick_seconds_ = s;
  tick_seconds_sum_ += s;
  ++ticks_;
  for (std::size_t i = 0; i < std::size(kBounds); ++i) {
    if (s <= kBounds[i]) ++buckets_[i];
  }
}

uint64_t self_resident_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "re");
  if (!f) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return static_cast<uint64_t>(resident) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec * 1e-6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

void SelfMetrics::append_families(std::vector<Family>& out) const {
  Histogram h;
  h.bounds.assign(std::begin(kBounds), std::end(kBounds));
  h.cumulative.assign(std::begin(buckets_), std::end(buckets_));
  h.count = ticks_;
  h.sum = tick_seconds_sum_;
  Family tick_duration("wattprobe_agent_tick_duration_seconds",
                       "Time one tick took: sampling, accounting, attribution, carbon and snapshot.",
                       MetricType::histogram);
  tick_duration.histogram = std::move(h);
  out.push_back(std::move(tick_duration));
  out.push_back({"wattprobe_agent_last_tick_duration_seconds", "Time the last tick took.",
                 MetricType::gauge, {{{}, last_tick_seconds_}}});
  out.push_back({"wattprobe_agent_cpu_seconds_total", "CPU time the agent itself used.",
                 MetricType::counter, {{{}, self_cpu_seconds()}}});
  out.push_back({"wattprobe_agent_resident_memory_bytes", "The agent's resident set size.",
                 MetricType::gauge, {{{}, static_cast<double>(self_resident_bytes())}}});
}

}  // namespace wattprobe
