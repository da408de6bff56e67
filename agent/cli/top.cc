#include "agent/cli/top.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "agent/base/duration.h"
#include "agent/base/exposition_text.h"
#include "agent/base/http_client.h"
#include "agent/base/utc_time.h"
#include "agent/cli/commands.h"
#include "agent/pipeline.h"
#include "collectors/cpu/cpu_topology.h"

namespace po = boost::program_options;

namespace wattprobe {
namespace {

po::options_description describe_top() {
  po::options_description d("wattprobe top options");
  // One option a line, as in `run`'s table.
  // clang-format off
  d.add_options()
      ("url", po::value<std::string>(), "the agent's /metrics to read (default http://127.0.0.1:9887/metrics)")
      ("standalone", po::bool_switch(), "no agent running: measure in this process; every `run` option applies")
      ("interval", po::value<std::string>(), "refresh period, 100ms to 60s; with --standalone also the tick (default 1s)")
      ("sort", po::value<std::string>(), "watts, cpu, co2e or name (default watts); keys w, c, g, n switch while running");
  // clang-format on
  return d;
}

[[noreturn]] void bad(const std::string& option, const std::string& value, const std::string& why) {
  throw UsageError("invalid value \"" + value + "\" for --" + option + " (command line): " + why);
}

// ---- the terminal ------------------------------------------------------------------------------

// Signal handlers only write the signal's number to this pipe; the loop does the work.
int g_signal_pipe[2] = {-1, -1};

void on_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_signal_pipe[1], &b, 1);
  errno = saved;
}

constexpr int kHandled[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH, SIGTSTP};

void write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = ::write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the terminal is gone; nothing left to show it
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Raw keys, the alternate screen and a hidden cursor while active; the terminal as it was found
/// once left, whatever the way out (q, a signal, an early return).
class TerminalSession {
 public:
  bool enter() {
    if (::tcgetattr(STDIN_FILENO, &saved_) != 0) return false;
    termios raw = saved_;
    // Keys arrive one by one without echo; ISIG stays so Ctrl-C and Ctrl-Z still signal.
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_iflag &= ~static_cast<tcflag_t>(IXON | ICRNL);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) return false;
    active_ = true;
    write_all(STDOUT_FILENO, "\x1b[?1049h\x1b[?25l\x1b[2J");
    return true;
  }

  void leave() {
    if (!active_) return;
    // The cursor is shown once back on the main screen: emulators may keep it per screen.
    write_all(STDOUT_FILENO, "\x1b[0m\x1b[?1049l\x1b[?25h");
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_);
    active_ = false;
  }

  ~TerminalSession() { leave(); }

 private:
  termios saved_{};
  bool active_ = false;
};

/// While the screen is taken, messages the agent writes to stderr would land on top of it: they
/// go to a temporary file and are printed once the terminal is back.
class StderrHold {
 public:
  void start() {
    file_ = std::tmpfile();
    if (file_ == nullptr) return;
    saved_ = ::dup(STDERR_FILENO);
    if (saved_ < 0 || ::dup2(::fileno(file_), STDERR_FILENO) < 0) stop();
  }

  void stop() {
    if (saved_ >= 0) {
      std::fflush(stderr);
      ::dup2(saved_, STDERR_FILENO);
      ::close(saved_);
      saved_ = -1;
      std::rewind(file_);
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) {
        write_all(STDERR_FILENO, std::string_view(buf, n));
      }
    }
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
  }

  ~StderrHold() { stop(); }

 private:
  std::FILE* file_ = nullptr;
  int saved_ = -1;
};

std::pair<int, int> terminal_size() {
  winsize ws{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    return {ws.ws_col, ws.ws_row};
  }
  return {80, 24};
}

/// Each line at its own row and cleared to its end, the rest of the screen cleared: no scrolling
/// and no flicker, whatever the previous frame left.
void draw(const std::vector<std::string>& lines, bool clear_first) {
  std::string out = clear_first ? "\x1b[2J" : "";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += "\x1b[" + std::to_string(i + 1) + ";1H" + lines[i] + "\x1b[K";
  }
  out += "\x1b[" + std::to_string(lines.size() + 1) + ";1H\x1b[J";
  write_all(STDOUT_FILENO, out);
}

unsigned online_cpus(const HostPaths& paths) {
  if (auto cpus = read_online_cpus(paths); cpus.ok() && !cpus->empty()) {
    return static_cast<unsigned>(cpus->size());
  }
  if (auto cpus = read_online_cpus(HostPaths{}); cpus.ok() && !cpus->empty()) {
    return static_cast<unsigned>(cpus->size());
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

// ---- where the snapshots come from -------------------------------------------------------------

/// The frames' state: the last two snapshots of different ticks, and what went wrong if anything.
class View {
 public:
  explicit View(TopFrameInput input) : input_(std::move(input)) {}

  /// Takes a snapshot unless it repeats the current tick; says whether it was new.
  bool accept(SnapshotPtr s) {
    if (current_) {
      auto a = snapshot_tick_count(*current_), b = snapshot_tick_count(*s);
      if (a && b && *a == *b) return false;
    }
    previous_ = std::move(current_);
    current_ = std::move(s);
    return true;
  }

  void set_status(std::string status) { status_ = std::move(status); }
  void set_sort(TopSort sort) { input_.sort = sort; }

  TopFrame frame() const {
    if (!current_) return empty_top_frame(input_, status_);
    TopFrame f = build_top_frame(previous_.get(), *current_, input_);
    f.status = status_;
    return f;
  }

 private:
  TopFrameInput input_;
  SnapshotPtr previous_, current_;
  std::string status_;
};

/// One GET of /metrics, parsed strictly; the snapshot's time is when the answer arrived.
Result<SnapshotPtr> scrape(HttpClient& client, const std::string& url) {
  HttpGetResult r = client.get({url, {}, {}, {}});
  std::string where = redact_url(url);
  if (!r.ok()) return Error{ErrorKind::transient, where, r.detail};
  if (r.status != 200) {
    return Error{ErrorKind::transient, where, "answered HTTP " + std::to_string(r.status)};
  }
  auto parsed = parse_exposition_text(r.body, where);
  if (!parsed.ok()) return parsed.error();
  auto snap = std::make_shared<Snapshot>();
  snap->timestamp_ms = wall_clock_ms();
  snap->families = to_snapshot_families(std::move(*parsed));
  return SnapshotPtr(std::move(snap));
}

/// Wakes the screen loop at every snapshot the standalone pipeline publishes.
class WakeSink : public SnapshotSink {
 public:
  explicit WakeSink(int fd) : fd_(fd) {}
  void on_snapshot(const SnapshotPtr&) override {
    char b = 1;
    [[maybe_unused]] ssize_t n = ::write(fd_, &b, 1);
  }

 private:
  int fd_;
};

struct Standalone {
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<WakeSink> wake_sink;
  std::thread thread;
  int wake[2] = {-1, -1};

  ~Standalone() {
    if (thread.joinable()) {
      pipeline->request_stop();
      thread.join();
    }
    pipeline.reset();
    for (int fd : wake) {
      if (fd >= 0) ::close(fd);
    }
  }
};

/// The pipeline `wattprobe run` builds, in its standalone role (no port, no checkpoint, no
/// ledger: they would compete with a daemon's), ticking on a thread.
bool start_standalone(const Options& o, Standalone& s) {
  // What run would log goes unsaid: the screen is about to take the terminal.
  const LogLine quiet = [](const std::string&) {};
  auto built = Pipeline::build(o, PipelineRole::standalone, quiet);
  if (!built.ok()) {
    std::fprintf(stderr, "wattprobe top: %s\n", built.error().detail.c_str());
    return false;
  }
  if (::pipe2(s.wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "wattprobe top: pipe: %s\n", std::strerror(errno));
    return false;
  }
  s.pipeline = std::move(*built);
  if (auto started = s.pipeline->start(quiet); !started.ok()) {
    std::fprintf(stderr, "wattprobe top: %s\n", started.error().detail.c_str());
    return false;
  }
  s.wake_sink = std::make_unique<WakeSink>(s.wake[1]);
  s.pipeline->add_sink(s.wake_sink.get());
  s.thread = std::thread([p = s.pipeline.get(), quiet] { p->run(quiet); });
  return true;
}

void drain(int fd) {
  char buf[256];
  while (::read(fd, buf, sizeof buf) > 0) {
  }
}

std::string scrape_problem(const Error& e, std::chrono::milliseconds interval) {
  std::string retry = "; retrying every " + format_duration(interval) + ".";
  if (e.kind == ErrorKind::malformed) {
    return "not a metrics page: " + e.path + ": " + e.detail + retry +
           " Is --url a wattprobe agent's /metrics?";
  }
  return "cannot read " + e.path + ": " + e.detail + retry +
         " No agent there? `wattprobe top --standalone` measures in this process.";
}

}  // namespace

std::string top_options_help() {
  std::ostringstream os;
  os << "usage: wattprobe top [--url URL | --standalone [run options]] [--interval D] [--sort K]\n"
     << "Live per-workload watts, CO2e rate and CPU share of this host; q or Ctrl-C quits.\n"
     << "CPU % is a share of this host's online CPUs.\n\n"
     << describe_top()
     << "\nWith --standalone, `wattprobe run --help` lists the agent's options.\n";
  return os.str();
}

TopOptions parse_top_options(const std::vector<std::string>& args) {
  po::options_description desc = describe_top();
  std::vector<std::string> rest;
  po::variables_map vm = parse_own_options(args, desc, &rest);
  TopOptions o;
  o.standalone = vm["standalone"].as<bool>();
  if (vm.count("url")) {
    if (o.standalone) throw UsageError("--url and --standalone exclude each other");
    o.url = vm["url"].as<std::string>();
    if (!o.url.starts_with("http://") && !o.url.starts_with("https://")) {
      bad("url", o.url, "expected an http:// or https:// URL");
    }
  }
  if (vm.count("interval")) {
    std::string v = vm["interval"].as<std::string>();
    auto d = parse_duration(v);
    if (!d) bad("interval", v, "expected a duration such as 500ms, 1s, 5m");
    if (*d < std::chrono::milliseconds(100) || *d > std::chrono::seconds(60)) {
      bad("interval", v, "expected 100ms to 1m");
    }
    o.interval = *d;
    if (o.standalone) {
      rest.push_back("--interval");
      rest.push_back(v);
    }
  }
  if (vm.count("sort")) {
    std::string v = vm["sort"].as<std::string>();
    auto s = parse_top_sort(v);
    if (!s) bad("sort", v, "expected watts, cpu, co2e or name");
    o.sort = *s;
  }
  if (!o.standalone) {
    if (rest.empty()) return o;
    if (!rest.front().starts_with("-")) {
      throw UsageError("unexpected argument \"" + rest.front() + "\"");
    }
    parse_run_options(rest);  // an option neither command knows is named as such
    throw UsageError("option " + rest.front() + " is an agent option: it needs --standalone");
  }
  for (const std::string& a : rest) {
    if (a == "--listen" || a.starts_with("--listen=")) {
      throw UsageError("--listen has no use with top --standalone: it serves no port");
    }
  }
  o.agent = parse_run_options(rest);
  o.interval = o.agent.interval;  // one tick, one frame
  return o;
}

int run_top(const TopOptions& options) {
  if (!::isatty(STDIN_FILENO) || !::isatty(STDOUT_FILENO)) {
    std::fprintf(stderr, "wattprobe top: needs a terminal on standard input and output\n");
    return 1;
  }
  if (::pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "wattprobe top: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  // Threads the agent starts inherit a mask blocking these, so the handlers (and their EINTR)
  // only ever run on this thread.
  sigset_t handled;
  sigemptyset(&handled);
  for (int sig : kHandled) sigaddset(&handled, sig);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);

  TopFrameInput input;
  input.sort = options.sort;
  Standalone standalone;
  StderrHold held_stderr;
  std::unique_ptr<HttpClient> client;
  if (options.standalone) {
    input.origin = "standalone";
    input.cpus = online_cpus(options.agent.paths);
    if (!start_standalone(options.agent, standalone)) {
      pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);
      return 1;
    }
  } else {
    input.origin = redact_url(options.url);
    input.cpus = online_cpus(HostPaths{});
    double interval_s = static_cast<double>(options.interval.count()) / 1000.0;
    // /metrics grows with the workloads: 5,000 of them is several MB of text.
    client = std::make_unique<HttpClient>(
        HttpOptions{.connect_timeout_s = 1,
                    .total_timeout_s = std::clamp(interval_s, 1.0, 5.0),
                    .max_body_bytes = 64u << 20,
                    .ca_file = {}});
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : kHandled) ::sigaction(sig, &sa, nullptr);
  pthread_sigmask(SIG_UNBLOCK, &handled, nullptr);

  TerminalSession terminal;
  if (!terminal.enter()) {
    std::fprintf(stderr, "wattprobe top: cannot set up the terminal: %s\n", std::strerror(errno));
    return 1;
  }
  if (options.standalone) held_stderr.start();

  View view(input);
  auto [width, height] = terminal_size();
  bool clear = true;
  using clock = std::chrono::steady_clock;
  auto next_scrape = clock::now();
  int exit_code = -1;
  while (exit_code < 0) {
    draw(render_top_frame(view.frame(), width, height, true), clear);
    clear = false;

    pollfd fds[3] = {{STDIN_FILENO, POLLIN, 0}, {g_signal_pipe[0], POLLIN, 0}, {-1, POLLIN, 0}};
    int timeout_ms = -1;
    if (options.standalone) {
      fds[2].fd = standalone.wake[0];
    } else {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next_scrape - clock::now());
      timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    if (::poll(fds, 3, timeout_ms) < 0 && errno != EINTR) {
      exit_code = 1;
      break;
    }

    if (fds[1].revents & POLLIN) {
      unsigned char sigs[16];
      ssize_t n = ::read(g_signal_pipe[0], sigs, sizeof sigs);
      for (ssize_t i = 0; i < n && exit_code < 0; ++i) {
        int sig = sigs[i];
        if (sig == SIGWINCH) {
          std::tie(width, height) = terminal_size();
          clear = true;
        } else if (sig == SIGTSTP) {
          // Suspend with the terminal given back; take it again on `fg`.
          held_stderr.stop();
          terminal.leave();
          ::signal(SIGTSTP, SIG_DFL);
          ::raise(SIGTSTP);
          ::sigaction(SIGTSTP, &sa, nullptr);
          terminal.enter();
          if (options.standalone) held_stderr.start();
          std::tie(width, height) = terminal_size();
          clear = true;
        } else if (sig == SIGINT) {
          exit_code = 0;  // Ctrl-C is a user's way to quit, like q
        } else {
          exit_code = 128 + sig;
        }
      }
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      char keys[64];
      ssize_t n = ::read(STDIN_FILENO, keys, sizeof keys);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) exit_code = 0;  // hung up
      for (ssize_t i = 0; i < n; ++i) {
        char k = keys[i];
        if (k == '\x1b') break;  // an escape sequence (arrows, function keys): none is a command
        if (k == 'q' || k == 'Q') {
          exit_code = 0;
          break;
        }
        if (k == '\x0c') clear = true;  // Ctrl-L redraws
        if (auto sort = top_sort_for_key(static_cast<char>(k | 0x20))) view.set_sort(*sort);
      }
    }
    if (exit_code >= 0) break;

    if (options.standalone) {
      if (fds[2].revents & POLLIN) {
        drain(standalone.wake[0]);
        if (SnapshotPtr s = standalone.pipeline->snapshot()) view.accept(std::move(s));
      }
    } else if (clock::now() >= next_scrape) {
      auto started = clock::now();
      auto snap = scrape(*client, options.url);
      if (snap.ok()) {
        view.set_status({});
        // A scrape that finds the tick it saw before is early: the next one comes half a period
        // later, so scrapes settle between the agent's ticks and each rate spans whole ticks.
        next_scrape =
            started + (view.accept(std::move(*snap)) ? options.interval : options.interval / 2);
      } else {
        view.set_status(scrape_problem(snap.error(), options.interval));
        next_scrape = started + options.interval;
      }
    }
  }

  held_stderr.stop();
  terminal.leave();
  ::signal(SIGTSTP, SIG_DFL);
  return exit_code;
}

int top_command(const std::vector<std::string>& args) {
  if (std::find(args.begin(), args.end(), "--help") != args.end() ||
      std::find(args.begin(), args.end(), "-h") != args.end()) {
    std::fputs(top_options_help().c_str(), stdout);
    return 0;
  }
  TopOptions top;
  try {
    top = parse_top_options(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "wattprobe top: %s\n", e.what());
    return 2;
  }
  try {
    return run_top(top);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattprobe top: %s\n", e.what());
    return 1;
  }
}

}  // namespace wattprobe
