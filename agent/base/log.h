#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace wattprobe {

/// Where every part of the agent says what happened, one line each and without a prefix: a
/// stage returns its errors, and what it has to say while running (a counter that stalled, a
/// batch a receiver refused) goes here. The entry point decides where lines go; by default they
/// go to stderr as "wattprobe: <line>", and `top` holds them while it owns the terminal.
using LogSink = std::function<void(std::string_view line)>;

/// Set at start-up, before any thread starts; an empty sink restores the default.
void set_log_sink(LogSink sink);

void log_line(std::string_view line);

/// printf-style, for lines with numbers in them.
[[gnu::format(printf, 1, 2)]] void log_printf(const char* format, ...);

}  // namespace wattprobe
