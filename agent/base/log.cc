#include "agent/base/log.h"

#include <cstdarg>
#include <cstdio>
#include <vector>

namespace wattprobe {

namespace {

LogSink& sink() {
  static LogSink s;
  return s;
}

}  // namespace

void set_log_sink(LogSink s) { sink() = std::move(s); }

void log_line(std::string_view line) {
  if (sink()) {
    sink()(line);
    return;
  }
  // One write per line, so lines from several threads never interleave within a line.
  std::string out = "wattprobe: ";
  out.append(line);
  out.push_back('\n');
  std::fwrite(out.data(), 1, out.size(), stderr);
}

void log_printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  int n = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text;
  if (n > 0) {
    std::vector<char> buf(static_cast<std::size_t>(n) + 1);
    std::vsnprintf(buf.data(), buf.size(), format, again);
    text.assign(buf.data(), static_cast<std::size_t>(n));
  }
  va_end(again);
  log_line(text);
}

}  // namespace wattprobe
