#include "bpf/libbpf_log.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace wattprobe {

namespace {

constexpr std::size_t kTailBytes = 8192;
std::mutex g_mutex;
std::string g_tail;

int keep_tail(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[2048];
  int n = std::vsnprintf(line, sizeof line, format, args);
  std::lock_guard lock(g_mutex);
  g_tail += line;
  if (g_tail.size() > kTailBytes) g_tail.erase(0, g_tail.size() - kTailBytes);
  return n;
}

}  // namespace

void capture_libbpf_log() {
  libbpf_set_print(keep_tail);
  take_libbpf_log();
}

std::string take_libbpf_log(std::size_t max_bytes) {
  std::string log;
  {
    std::lock_guard lock(g_mutex);
    log.swap(g_tail);
  }
  while (!log.empty() && (log.back() == '\n' || log.back() == ' ')) log.pop_back();
  if (max_bytes > 0 && log.size() > max_bytes) {
    auto at = log.rfind('\n', log.size() - max_bytes);
    if (at != std::string::npos) log.erase(0, at + 1);
  }
  return log;
}

}  // namespace wattprobe
