#include "agent/base/series_starts.h"

#include <algorithm>

namespace wattprobe {

std::string SeriesStarts::key(std::string_view family, const Labels& labels) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(labels.size());
  for (const auto& l : labels)
    if (!l.second.empty()) sorted.push_back(&l);
  std::sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) { return *a < *b; });
  // NUL cannot occur in a metric or label name, nor in a label value the agent makes.
  std::string k(family);
  for (const auto* l : sorted) {
    k += '\0';
    k += l->first;
    k += '\0';
    k += l->second;
  }
  return k;
}

void SeriesStarts::restore(const std::vector<SeriesStart>& starts) {
  for (const auto& s : starts) {
    if (s.start_ms <= 0) continue;
    Entry& e = by_key_[key(s.family, s.labels)];
    e.start_ms = s.start_ms;
    e.restored = true;
    e.seen = generation_;
  }
}

void SeriesStarts::observe(const Snapshot& snapshot, int64_t interval_start_ms) {
  ++generation_;
  auto see = [&](const std::string& name, const Labels& labels, double value) {
    auto [it, fresh] = by_key_.try_emplace(key(name, labels));
    Entry& e = it->second;
    if (fresh || (!e.restored && value < e.last)) e.start_ms = interval_start_ms;
    e.last = value;
    e.restored = false;
    e.seen = generation_;
  };
  for (const auto& f : snapshot.families) {
    if (f.type == MetricType::counter) {
      for (const auto& s : f.series) see(f.name, s.labels, s.value);
    } else if (f.type == MetricType::histogram && f.histogram) {
      see(f.name, {}, static_cast<double>(f.histogram->count));
    }
  }
  std::erase_if(by_key_, [&](const auto& kv) { return kv.second.seen != generation_; });
}

int64_t SeriesStarts::start_ms(std::string_view family, const Labels& labels) const {
  auto it = by_key_.find(key(family, labels));
  return it == by_key_.end() ? 0 : it->second.start_ms;
}

std::vector<SeriesStart> SeriesStarts::entries() const {
  std::vector<SeriesStart> out;
  out.reserve(by_key_.size());
  for (const auto& [k, e] : by_key_) {
    SeriesStart s;
    std::size_t at = k.find('\0');
    s.family = k.substr(0, at);
    while (at != std::string::npos) {
      std::size_t value_at = k.find('\0', at + 1);
      std::size_t next = k.find('\0', value_at + 1);
      s.labels.emplace_back(
          k.substr(at + 1, value_at - at - 1),
          k.substr(value_at + 1,
                   next == std::string::npos ? std::string::npos : next - value_at - 1));
      at = next;
    }
    s.start_ms = e.start_ms;
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const SeriesStart& a, const SeriesStart& b) {
    return std::tie(a.family, a.labels) < std::tie(b.family, b.labels);
  });
  return out;
}

}  // namespace wattprobe
