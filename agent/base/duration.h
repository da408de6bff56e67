#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace wattprobe {

/// Parses a Prometheus-style duration: a whole number and one unit of ms, s, m, h or d
/// ("100ms", "1s", "5m"). Anything else — no unit, a sign, a fraction, spaces — is rejected.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

std::string format_duration(std::chrono::milliseconds d);

}  // namespace wattprobe
