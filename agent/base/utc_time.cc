#include "agent/base/utc_time.h"

#include <charconv>
#include <chrono>
#include <cstdio>

#include "agent/base/duration.h"

namespace wattprobe {

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
namespace {

using namespace std::chrono;

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  std::from_chars(s.data() + pos, s.data() + pos + n, out);
  return true;
}

std::optional<int64_t> parse_date_prefix(std::string_view s) {
  int y = 0, m = 0, d = 0;
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  if (!digits(s, 0, 4, y) || !digits(s, 5, 2, m) || !digits(s, 8, 2, d)) return std::nullopt;
  year_month_day ymd{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return duration_cast<milliseconds>(sys_days{ymd}.time_since_epoch()).count();
}

}  // namespace

int64_t utc_day(int64_t ms) {
  return ms >= 0 ? ms / kMsPerUtcDay : -((-ms + kMsPerUtcDay - 1) / kMsPerUtcDay);
}

std::string format_utc_date(int64_t ms) {
  year_month_day ymd{sys_days{days{utc_day(ms)}}};
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

std::string format_utc_instant(int64_t ms) {
  int64_t in_day = ms - utc_day(ms) * kMsPerUtcDay;
  int64_t s = in_day / 1000;
  char buf[16];
  std::snprintf(buf, sizeof buf, "T%02d:%02d:%02dZ", static_cast<int>(s / 3600),
                static_cast<int>(s / 60 % 60), static_cast<int>(s % 60));
  return format_utc_date(ms) + buf;
}

std::optional<int64_t> parse_utc_date(std::string_view text) {
  if (text.size() != 10) return std::nullopt;
  return parse_date_prefix(text);
}

std::optional<int64_t> parse_utc_instant(std::string_view text) {
  if (text.size() != 20 || text[10] != 'T' || text[13] != ':' || text[16] != ':' ||
      text[19] != 'Z') {
    return std::nullopt;
  }
  auto midnight = parse_date_prefix(text);
  int h = 0, m = 0, s = 0;
  if (!midnight || !digits(text, 11, 2, h) || !digits(text, 14, 2, m) || !digits(text, 17, 2, s) ||
      h > 23 || m > 59 || s > 59) {
    return std::nullopt;
  }
  return *midnight + ((h * 60 + m) * 60 + s) * int64_t{1000};
}

std::optional<int64_t> parse_utc_time_or_ago(std::string_view text, int64_t now_ms) {
  if (text == "now") return now_ms;
  if (!text.empty() && text[0] == '-') {
    auto d = parse_duration(text.substr(1));
    if (!d) return std::nullopt;
    return now_ms - d->count();
  }
  if (text.size() == 10) return parse_utc_date(text);
  return parse_utc_instant(text);
}

}  // namespace wattprobe
