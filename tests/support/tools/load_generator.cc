// Synthetic host load for the overhead benchmark (tests/bench/overhead): the three shapes of work
// that cost an accounting agent the most, each held at a known rate until SIGTERM or --seconds.
//
//   load_generator --sleepers 2000
//       starts 2,000 child processes that sleep until the generator ends (many processes, no
//       events).
//   load_generator --ping-pong 2 --rate 15000
//       2 pairs of threads passing one byte back and forth through pipes, 15,000 round trips/s
//       in all (each round trip is two to four context switches, by where the threads run).
//   load_generator --forks 1000
//       1,000 short-lived processes per second, each exiting at once.
//
// The children share the generator's memory (clone(CLONE_VM), vfork()) and are processes all the
// same: their own pid, /proc entry and exit. Copying page tables, as fork() does, costs ~5 ms a
// process on a VM whose page tables are shadowed (PVM), which would cap the churn near 200/s
// there, and a fork()ed child's cost is not what this load is for.
//
// Prints "ready" once the load runs, and on exit one line with what it achieved:
// "load_generator: <mode> <count> in <seconds> s = <rate>/s" ("sleepers <count> for <seconds> s").
// Exit 0; 2 on a bad argument; 1 when the host refuses something (the reason goes to stderr).
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

std::atomic<bool> g_stop{false};

void on_stop(int) { g_stop.store(true); }

int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void sleep_until(int64_t ns) {
  timespec ts{.tv_sec = ns / 1'000'000'000, .tv_nsec = ns % 1'000'000'000};
  clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);  // EINTR: the caller re-checks
}

// Paces `rate` events per second from `start`: sleeps while ahead of the schedule.
void pace(int64_t start, uint64_t done, double rate) {
  const int64_t due = start + static_cast<int64_t>(double(done) * 1e9 / rate);
  if (due > monotonic_ns()) sleep_until(due);
}

bool stopping(int64_t end) {
  return g_stop.load(std::memory_order_relaxed) || monotonic_ns() >= end;
}

void report(const char* mode, uint64_t count, int64_t start) {
  double seconds = double(monotonic_ns() - start) / 1e9;
  std::printf("load_generator: %s %llu in %.3f s = %.1f/s\n", mode,
              static_cast<unsigned long long>(count), seconds, double(count) / seconds);
  std::fflush(stdout);
}

void ready() {
  std::printf("ready\n");
  std::fflush(stdout);
}

pid_t g_parent = 0;

// A sleeper shares the generator's memory and signal handlers (its own copy of them), so it
// makes only raw system calls and touches nothing but its own stack.
int sleeper(void*) {
  syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // dies with the generator
  if (syscall(SYS_getppid) != g_parent) syscall(SYS_exit, 0);
  for (;;) syscall(SYS_pause);
}

int run_sleepers(long count, int64_t end) {
  constexpr std::size_t kStackBytes = 16 * 1024;
  const std::size_t stacks_bytes = kStackBytes * static_cast<std::size_t>(count);
  void* stacks = mmap(nullptr, stacks_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (stacks == MAP_FAILED) {
    std::fprintf(stderr, "load_generator: mmap of %zu bytes of stacks: %s\n", stacks_bytes,
                 std::strerror(errno));
    return 1;
  }
  std::vector<pid_t> children;
  children.reserve(static_cast<std::size_t>(count));
  g_parent = getpid();
  const int64_t start = monotonic_ns();
  for (long i = 0; i < count && !g_stop.load(); ++i) {
    char* stack_top = static_cast<char*>(stacks) + kStackBytes * static_cast<std::size_t>(i + 1);
    pid_t pid = clone(sleeper, stack_top, CLONE_VM | SIGCHLD, nullptr);
    if (pid < 0) {
      std::fprintf(stderr, "load_generator: clone of sleeper %ld: %s\n", i, std::strerror(errno));
      for (pid_t child : children) kill(child, SIGKILL);
      for (pid_t child : children) waitpid(child, nullptr, 0);
      return 1;
    }
    children.push_back(pid);
  }
  ready();
  while (!stopping(end)) sleep_until(std::min(end, monotonic_ns() + 100'000'000));
  for (pid_t child : children) kill(child, SIGKILL);
  for (pid_t child : children) waitpid(child, nullptr, 0);
  std::printf("load_generator: sleepers %zu for %.3f s\n", children.size(),
              double(monotonic_ns() - start) / 1e9);
  std::fflush(stdout);
  return 0;
}

int run_ping_pong(long pairs, double rate, int64_t end) {
  struct Pair {
    int ping[2];
    int pong[2];
  };
  std::vector<Pair> pipes(static_cast<std::size_t>(pairs));
  for (auto& p : pipes) {
    if (pipe(p.ping) != 0 || pipe(p.pong) != 0) {
      std::fprintf(stderr, "load_generator: pipe: %s\n", std::strerror(errno));
      return 1;
    }
  }
  std::atomic<uint64_t> round_trips{0};
  const double rate_per_pair = rate / double(pairs);
  const int64_t start = monotonic_ns();
  std::vector<std::thread> threads;
  for (auto& p : pipes) {
    threads.emplace_back([&p] {
      char byte;
      while (read(p.ping[0], &byte, 1) == 1 && byte == 'p') {
        if (write(p.pong[1], &byte, 1) != 1) break;
      }
    });
    threads.emplace_back([&p, &round_trips, rate_per_pair, start, end] {
      char byte = 'p';
      uint64_t done = 0;
      while (!stopping(end)) {
        // Pace in batches of 16 so the pacing clock costs little next to the switches.
        for (int i = 0; i < 16; ++i) {
          if (write(p.ping[1], &byte, 1) != 1 || read(p.pong[0], &byte, 1) != 1) return;
          ++done;
        }
        round_trips.fetch_add(16, std::memory_order_relaxed);
        pace(start, done, rate_per_pair);
      }
      byte = 'q';
      (void)!write(p.ping[1], &byte, 1);
    });
  }
  ready();
  for (auto& t : threads) t.join();
  report("round_trips", round_trips.load(), start);
  return 0;
}

int run_forks(double rate, int64_t end) {
  const int64_t start = monotonic_ns();
  uint64_t forked = 0;
  ready();
  while (!stopping(end)) {
    // The generator waits while the child runs, until its _exit().
    pid_t pid = vfork();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      if (errno == EAGAIN) {
        sleep_until(monotonic_ns() + 1'000'000);
        continue;
      }
      std::fprintf(stderr, "load_generator: vfork: %s\n", std::strerror(errno));
      return 1;
    }
    waitpid(pid, nullptr, 0);
    ++forked;
    pace(start, forked, rate);
  }
  report("forks", forked, start);
  return 0;
}

bool parse_number(std::string_view text, double& out) {
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && p == text.data() + text.size();
}

int usage() {
  std::fprintf(stderr,
               "usage: load_generator --sleepers N [--seconds S]\n"
               "       load_generator --ping-pong PAIRS --rate ROUND_TRIPS_PER_S [--seconds S]\n"
               "       load_generator --forks PER_S [--seconds S]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double sleepers = 0, pairs = 0, rate = 0, forks = 0, seconds = 24 * 3600;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) return usage();
    std::string_view value = argv[++i];
    double* target = arg == "--sleepers"    ? &sleepers
                     : arg == "--ping-pong" ? &pairs
                     : arg == "--rate"      ? &rate
                     : arg == "--forks"     ? &forks
                     : arg == "--seconds"   ? &seconds
                                            : nullptr;
    if (!target || !parse_number(value, *target) || *target <= 0) {
      std::fprintf(stderr, "load_generator: bad %.*s %.*s\n", static_cast<int>(arg.size()),
                   arg.data(), static_cast<int>(value.size()), value.data());
      return usage();
    }
  }
  if ((sleepers > 0) + (pairs > 0) + (forks > 0) != 1 || (pairs > 0) != (rate > 0)) return usage();

  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sa.sa_flags = SA_RESTART;  // a pipe read resumes; the loops poll g_stop
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  const int64_t end = monotonic_ns() + static_cast<int64_t>(seconds * 1e9);
  if (sleepers > 0) return run_sleepers(static_cast<long>(sleepers), end);
  if (pairs > 0) return run_ping_pong(static_cast<long>(pairs), rate, end);
  return run_forks(forks, end);
}
