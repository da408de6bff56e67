#pragma once

#include <string>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// Appends `snap` to `out` in the Prometheus text exposition format 0.0.4, in the families' and
/// series' order, with the lines prometheus-cpp 1.0's TextSerializer wrote for the same data
/// (HELP, TYPE, samples; a histogram as _count, _sum, then its _bucket lines up to le="+Inf").
/// Two differences, both in what the format allows: a value is the shortest text that reads
/// back as the same double (prometheus-cpp rounded to 16 digits), and HELP text has its
/// backslashes and newlines escaped (prometheus-cpp wrote them raw, which breaks the line).
/// `le` keeps prometheus-cpp's 16-digit form, since it names a series and must not change.
void append_prometheus_text(const Snapshot& snap, std::string& out);

/// append_prometheus_text into a string reserved for the whole text.
std::string render_prometheus_text(const Snapshot& snap);

}  // namespace wattprobe
