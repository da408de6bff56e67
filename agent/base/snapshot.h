#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wattprobe {

enum class MetricType { counter, gauge, histogram };

struct EndedWorkload;  // agent/base/ended_workload.h

using Labels = std::vector<std::pair<std::string, std::string>>;

/// The value of label `name`, or an empty string where the series has none (the text format's
/// own rule: an absent label and an empty one are the same).
inline const std::string& label_value(const Labels& labels, std::string_view name) {
  static const std::string none;
  for (const auto& [k, v] : labels) {
    if (k == name) return v;
  }
  return none;
}

/// A series' labels, immutable and shared. A workload's labels are built once and every tick's
/// series, and every snapshot an exporter still holds, points at the same strings: at 10,000
/// workloads, building 30,000 label vectors of 8 strings each tick and freeing them when the next
/// snapshot replaced this one was most of a tick's cost (README "Overhead"). Reads like a
/// `const Labels&`.
class SeriesLabels {
 public:
  using const_iterator = Labels::const_iterator;
  using iterator = const_iterator;
  using value_type = Labels::value_type;

  SeriesLabels() = default;
  SeriesLabels(Labels labels)  // NOLINT: implicit, so `{labels, value}` makes a Series
      : labels_(labels.empty() ? nullptr : std::make_shared<const Labels>(std::move(labels))) {}
  SeriesLabels(std::initializer_list<value_type> labels) : SeriesLabels(Labels(labels)) {}

  const Labels& get() const { return labels_ ? *labels_ : none(); }
  operator const Labels&() const { return get(); }  // NOLINT: reads like the vector it holds

  const_iterator begin() const { return get().begin(); }
  const_iterator end() const { return get().end(); }
  std::size_t size() const { return labels_ ? labels_->size() : 0; }
  bool empty() const { return size() == 0; }
  const value_type& operator[](std::size_t i) const { return (*labels_)[i]; }
  const value_type& at(std::size_t i) const { return get().at(i); }
  const value_type& front() const { return labels_->front(); }
  const value_type& back() const { return labels_->back(); }

  friend bool operator==(const SeriesLabels& a, const SeriesLabels& b) {
    return a.labels_ == b.labels_ || a.get() == b.get();
  }
  friend bool operator==(const SeriesLabels& a, const Labels& b) { return a.get() == b; }

 private:
  static const Labels& none() {
    static const Labels empty;
    return empty;
  }
  std::shared_ptr<const Labels> labels_;
};

struct Series {
  SeriesLabels labels;  // in the family's label order; values already final (no escaping needed)
  double value = 0;
};

/// A histogram family has one unlabelled series, held here instead of in `series`.
struct Histogram {
  std::vector<double> bounds;        // upper bounds, ascending, without +Inf
  std::vector<uint64_t> cumulative;  // observations <= each bound
  uint64_t count = 0;
  double sum = 0;
};

struct Family {
  Family() = default;
  Family(std::string name_, std::string help_, MetricType type_, std::vector<Series> series_ = {})
      : name(std::move(name_)), help(std::move(help_)), type(type_), series(std::move(series_)) {}

  std::string name;  // full metric name, e.g. wattprobe_node_energy_joules_total
  std::string help;
  MetricType type = MetricType::gauge;
  std::vector<Series> series;
  std::optional<Histogram> histogram;  // type == histogram only
};

/// What one tick produced, immutable once published. Exporters (Prometheus pull, remote-write,
/// `top`) read only this; they never reach into collectors (docs/architecture.md). Each part of the
/// agent appends its own families, so adding a concern never touches the exporters.
struct Snapshot {
  int64_t timestamp_ms = 0;  // wall clock at the end of the tick
  std::vector<Family> families;
  /// Workloads that ended in this tick (their cgroup was removed), with their totals: what the
  /// job records are written from. Null when none did.
  std::shared_ptr<const std::vector<EndedWorkload>> ended;

  const Family* find(std::string_view name) const {
    for (const auto& f : families)
      if (f.name == name) return &f;
    return nullptr;
  }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace wattprobe
