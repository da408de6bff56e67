#include "collectors/units/unit_counter.h"

#include <algorithm>
#include <cmath>

namespace wattprobe {
namespace {

bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

/// The label set as one key, in a fixed order, so a service that reorders its labels keeps
/// its series. \x1f and \x1e cannot appear in a parsed name, and separate the values.
std::string series_key(Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::string key;
  for (const auto& [k, v] : labels) {
    key += k;
    key += '\x1f';
    key += v;
    key += '\x1e';
  }
  return key;
}

bool holds(const Labels& labels, const std::pair<std::string, std::string>& want) {
  for (const auto& l : labels) {
    if (l.first == want.first) return l.second == want.second;
  }
  return false;
}

}  // namespace

CounterSeries select_counter(const std::vector<ExpositionFamily>& families, const UnitSpec& spec) {
  CounterSeries out;
  bool named = false;
  for (const ExpositionFamily& f : families) {
    for (const ExpositionSample& s : f.samples) {
      if (s.name != spec.counter) continue;
      named = true;
      const bool part = ends_with(s.name, "_count") || ends_with(s.name, "_sum");
      const bool fits =
          f.type == ExpositionType::counter || f.type == ExpositionType::untyped ||
          ((f.type == ExpositionType::histogram || f.type == ExpositionType::summary) && part);
      if (!fits) {
        return {{},
                "not_counter",
                "\"" + spec.counter + "\" is in a " +
                    (f.type == ExpositionType::gauge       ? std::string("gauge")
                     : f.type == ExpositionType::histogram ? std::string("histogram")
                                                           : std::string("summary")) +
                    " family \"" + f.name + "\": a unit needs a counter or a _count or _sum"};
      }
      bool all = true;
      for (const auto& m : spec.match) all = all && holds(s.labels, m);
      if (!all) continue;
      if (!std::isfinite(s.value) || s.value < 0) {
        return {
            {}, "malformed", "\"" + spec.counter + "\" has the value " + std::to_string(s.value)};
      }
      out.series.emplace_back(series_key(s.labels), s.value);
    }
  }
  if (out.series.empty()) {
    out.reason = "missing_counter";
    out.detail = named ? "no series of \"" + spec.counter + "\" holds every match label"
                       : "no sample named \"" + spec.counter + "\"";
  }
  return out;
}

double CounterTotal::update(const std::vector<std::pair<std::string, double>>& series) {
  double added = 0;
  for (const auto& [key, value] : series) {
    auto it = last_.find(key);
    if (it == last_.end()) {
      last_.emplace(key, value);
      continue;
    }
    if (value >= it->second) {
      added += value - it->second;
    } else {
      added += value;
      ++resets_;
    }
    it->second = value;
  }
  if (!baselined_) {
    baselined_ = true;
    added = 0;
  }
  if (last_.size() > kMaxSeries) {
    std::unordered_map<std::string, double> kept;
    for (const auto& [key, value] : series) kept[key] = value;
    last_ = std::move(kept);
  }
  total_ += added;
  return added;
}

}  // namespace wattprobe
