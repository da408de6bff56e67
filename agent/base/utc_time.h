#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wattprobe {

inline constexpr int64_t kMsPerUtcDay = 86'400'000;

/// The wall clock, milliseconds since the epoch.
int64_t wall_clock_ms();

/// Days since 1970-01-01 of the UTC day holding `ms` (floor, also before the epoch).
int64_t utc_day(int64_t ms);

/// "2026-11-23" for the UTC day holding `ms`.
std::string format_utc_date(int64_t ms);
/// "2026-11-23T10:00:00Z": whole seconds (the fraction is cut), always UTC.
std::string format_utc_instant(int64_t ms);

/// Strict "YYYY-MM-DD" (a real calendar day): milliseconds at its UTC midnight.
std::optional<int64_t> parse_utc_date(std::string_view text);
/// Strict "YYYY-MM-DDTHH:MM:SSZ" (UTC only, no fraction, no offset): milliseconds.
std::optional<int64_t> parse_utc_instant(std::string_view text);
/// What `report`'s --since and --until take: "2026-11-23T10:00:00Z", "2026-11-23" (its UTC
/// midnight), "now", or a time before `now_ms` such as "-24h", "-30m", "-7d".
std::optional<int64_t> parse_utc_time_or_ago(std::string_view text, int64_t now_ms);

}  // namespace wattprobe
