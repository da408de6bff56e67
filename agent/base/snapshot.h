#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

namespace wattprobe {

enum class MetricType { counter, gauge, histogram };

using Labels = std::vector<std::pair<std::string, std::string>>;

struct Series {
  Labels labels;  // in the family's label order; values already final (no escaping needed)
  double value = 0;
};

/// A histogram family has one unlabelled series, held here instead of in `series`.
struct Histogram {
  std::vector<double> bounds;         // upper bounds, ascending, without +Inf
  std::vector<uint64_t> cumulative;   // observations <= each bound
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
/// `top`) read only this; they never reach into collectors (docs/architecture.md). Each part of the agent
/// appends its own families, so adding a concern never touches the exporters.
struct Snapshot {
  int64_t timestamp_ms = 0;  // wall clock at the end of the tick
  std::vector<Family> families;

  const Family* find(std::string_view name) const {
    for (const auto& f : families)
      if (f.name == name) return &f;
    return nullptr;
  }
};

using SnapshotPtr = std::shared_ptr<const Snapshot>;

}  // namespace wattprobe
