#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

enum class ExpositionType { counter, gauge, histogram, summary, untyped };

/// One sample line: `name{labels} value [timestamp]`, labels unescaped, in line order.
struct ExpositionSample {
  std::string name;  // the line's own name: for histograms it ends in _bucket, _sum or _count
  Labels labels;
  double value = 0;
  std::optional<int64_t> timestamp_ms;
};

struct ExpositionFamily {
  std::string name;
  std::string help;  // unescaped
  ExpositionType type = ExpositionType::untyped;
  std::vector<ExpositionSample> samples;
};

/// Parses the Prometheus text exposition format 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/) strictly: metric and label
/// names by their grammar, label values with the \\ \" \n escapes only, values as Go floats
/// including NaN, +Inf and -Inf, optional integer timestamps, at most one HELP and TYPE per
/// family (TYPE before its samples), each family in one group, no series twice, and the last line
/// ended by a newline. The error's detail names the line number and quotes the line; `source`
/// (a URL or file) is its path.
Result<std::vector<ExpositionFamily>> parse_exposition_text(std::string_view text,
                                                            std::string_view source);

/// The families in the Snapshot shape `top` reads: counters, gauges (untyped ones as gauges) and
/// unlabelled histograms. Summaries and labelled histograms have no Snapshot shape and are left
/// out; wattprobe exports neither.
std::vector<Family> to_snapshot_families(std::vector<ExpositionFamily> families);

}  // namespace wattprobe
