// Burns CPU in a known pattern for the accounting tests and the end-to-end tests.
//
//   cpu_burner --busy-ratio 0.75 --seconds 5 [--cgroup DIR]
//       busy for 75 % of every 100 ms period (measured in CPU time, so the figure holds on a
//       loaded host), idle for the rest, for 5 s of wall time.
//   cpu_burner --spawn 2000 --each-ms 2 [--parallel 1] [--cgroup DIR]
//       forks 2000 short-lived children, each burning 2 ms of CPU and exiting.
//
// --cgroup DIR moves the burner into that cgroup (by writing its pid to DIR/cgroup.procs) before
// any burning, so every child inherits it. Exit code 0 on success, 2 on a bad argument, 1 when
// the host refuses something (the reason goes to stderr).
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "agent/base/cpu_burn.h"

namespace {

using wattprobe::burn_cpu_ns;
using wattprobe::clock_ns;
using wattprobe::sleep_until_monotonic_ns;

bool join_cgroup(const std::string& dir) {
  std::string procs = dir + "/cgroup.procs";
  int fd = open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "cpu_burner: %s: %s\n", procs.c_str(), std::strerror(errno));
    return false;
  }
  std::string pid = std::to_string(getpid()) + "\n";
  bool ok = write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
  if (!ok) std::fprintf(stderr, "cpu_burner: write %s: %s\n", procs.c_str(), std::strerror(errno));
  close(fd);
  return ok;
}

bool parse_double(std::string_view text, double& out) {
  char* end = nullptr;
  std::string s(text);
  out = std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

bool parse_long(std::string_view text, long& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

int usage() {
  std::fprintf(stderr,
               "usage: cpu_burner --busy-ratio R --seconds S [--cgroup DIR]\n"
               "       cpu_burner --spawn N --each-ms M [--parallel P] [--cgroup DIR]\n");
  return 2;
}

int run_steady(double busy_ratio, double seconds) {
  constexpr int64_t kPeriodNs = 100'000'000;
  const int64_t busy_ns = static_cast<int64_t>(busy_ratio * kPeriodNs);
  const int64_t start = clock_ns(CLOCK_MONOTONIC);
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  for (int64_t period = start; period < end; period += kPeriodNs) {
    burn_cpu_ns(std::min(busy_ns, std::max<int64_t>(0, end - clock_ns(CLOCK_MONOTONIC))));
    sleep_until_monotonic_ns(std::min(period + kPeriodNs, end));
  }
  return 0;
}

int run_spawn(long count, double each_ms, long parallel) {
  const int64_t each_ns = static_cast<int64_t>(each_ms * 1e6);
  long running = 0;
  int failures = 0;
  auto reap_one = [&] {
    int status = 0;
    if (wait(&status) > 0) {
      --running;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
    }
  };
  for (long i = 0; i < count; ++i) {
    while (running >= parallel) reap_one();
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "cpu_burner: fork: %s\n", std::strerror(errno));
      return 1;
    }
    if (pid == 0) {
      burn_cpu_ns(each_ns);
      _exit(0);
    }
    ++running;
  }
  while (running > 0) reap_one();
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  double busy_ratio = -1, seconds = -1, each_ms = -1;
  long spawn = -1, parallel = 1;
  std::string cgroup;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage();
    std::string_view value = argv[++i];
    bool ok = true;
    if (arg == "--busy-ratio")
      ok = parse_double(value, busy_ratio) && busy_ratio >= 0 && busy_ratio <= 1;
    else if (arg == "--seconds")
      ok = parse_double(value, seconds) && seconds > 0;
    else if (arg == "--spawn")
      ok = parse_long(value, spawn) && spawn > 0;
    else if (arg == "--each-ms")
      ok = parse_double(value, each_ms) && each_ms >= 0;
    else if (arg == "--parallel")
      ok = parse_long(value, parallel) && parallel > 0;
    else if (arg == "--cgroup")
      cgroup = value;
    else
      ok = false;
    if (!ok) {
      std::fprintf(stderr, "cpu_burner: bad %.*s %.*s\n", static_cast<int>(arg.size()), arg.data(),
                   static_cast<int>(value.size()), value.data());
      return usage();
    }
  }
  const bool steady = busy_ratio >= 0 && seconds > 0;
  const bool spawning = spawn > 0 && each_ms >= 0;
  if (steady == spawning) return usage();
  if (!cgroup.empty() && !join_cgroup(cgroup)) return 1;
  return steady ? run_steady(busy_ratio, seconds) : run_spawn(spawn, each_ms, parallel);
}
