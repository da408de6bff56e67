// Drives a fake powercap tree while the real agent reads it, for the end-to-end tests:
//
//   fake_powercap_driver --root DIR --scenario one_socket|two_socket_with_dram|amd_zen|...
//       --watts package=42,dram=7 [--follow-load idle=20,k=60] [--period-ms 50]
//       [--max-range-uj N] [--duration-s S] [--report FILE] [--stall-file FILE]
//
// Writes the tree under DIR/sys once, prints "ready", then every period adds watts × elapsed to
// each zone's energy_uj (wrapping at max_energy_range_uj) and rewrites FILE atomically with
// {"elapsed_s":..,"joules":{"<zone>":..},"watts":{"<zone>":..},"busy":..}: the exact energy
// added since start. --follow-load sets every package zone to idle + k × the busy fraction of the
// real host's CPUs over the last period (capacity less the real /proc/stat's idle time, not DIR's),
// so a test can burn CPU and know the ground-truth energy. --stall-file: while FILE exists, the
// zones it names (keys separated by commas or newlines, e.g. "intel-rapl:0") hold their energy_uj,
// as a counter a hypervisor does not advance; once FILE is gone they move on from there. Stops on
// SIGTERM/SIGINT or after --duration-s.

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/fake_sysfs.h"

namespace {

using wattprobe::testing::PowercapDriver;
using wattprobe::testing::SysfsWriter;

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "fake_powercap_driver: " << why << "\n"
            << "usage: fake_powercap_driver --root DIR --scenario NAME --watts domain=W[,...]\n"
            << "       [--follow-load idle=W,k=W] [--period-ms MS] [--max-range-uj N]\n"
            << "       [--duration-s S] [--report FILE] [--stall-file FILE]\n";
  std::exit(2);
}

double parse_number(std::string_view text, std::string_view what) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0) {
    usage("bad " + std::string(what) + ": \"" + std::string(text) + "\"");
  }
  return v;
}

// "package=42,dram=7" → {package: 42, dram: 7}
std::map<std::string, double> parse_pairs(std::string_view text, std::string_view what) {
  std::map<std::string, double> out;
  while (!text.empty()) {
    auto comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    auto eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) usage("bad " + std::string(what) + " item");
    out[std::string(item.substr(0, eq))] = parse_number(item.substr(eq + 1), what);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

struct CpuTimes {
  unsigned long long idle = 0;  // idle + iowait, USER_HZ ticks
  int cpus = 0;                 // cpuN lines: the CPUs online now
};

// The real host's idle time from /proc/stat. Hardware power follows how long the CPUs were not
// idle, and the idle fields are the kernel's exact (NO_HZ) idle time, where user and system are
// sampled at the scheduler tick: a host whose only work is short timer wakeups (this driver, an
// agent) read several percent busy from them and drew 1-3 W above its idle at "idle".
std::optional<CpuTimes> read_host_cpu() {
  std::ifstream in("/proc/stat");
  std::string label;
  unsigned long long user, nice, system, idle, iowait;
  if (!(in >> label >> user >> nice >> system >> idle >> iowait) || label != "cpu") {
    return std::nullopt;
  }
  CpuTimes t;
  t.idle = idle + iowait;
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 3 && line.compare(0, 3, "cpu") == 0 && line[3] >= '0' && line[3] <= '9')
      ++t.cpus;
  }
  if (t.cpus == 0) return std::nullopt;
  return t;
}

std::string joules_text(uint64_t uj) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%llu.%06llu", static_cast<unsigned long long>(uj / 1000000),
                static_cast<unsigned long long>(uj % 1000000));
  return buf;
}

void write_report(const std::string& file, const PowercapDriver& driver, double elapsed,
                  double busy) {
  std::ostringstream json;
  char num[64];
  std::snprintf(num, sizeof num, "%.9f", elapsed);
  json << "{\"elapsed_s\":" << num << ",\"joules\":{";
  bool first = true;
  for (const auto& z : driver.scenario().zones) {
    json << (first ? "" : ",") << "\"" << z.key << "\":" << joules_text(driver.added_uj(z.key));
    first = false;
  }
  json << "},\"watts\":{";
  first = true;
  for (const auto& z : driver.scenario().zones) {
    std::snprintf(num, sizeof num, "%.6f", driver.watts(z.key));
    json << (first ? "" : ",") << "\"" << z.key << "\":" << num;
    first = false;
  }
  std::snprintf(num, sizeof num, "%.6f", busy);
  json << "},\"busy\":" << num << "}\n";
  // Rename over the old report so a reader never sees half of it.
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json.str();
    if (!out) {
      std::cerr << "fake_powercap_driver: cannot write " << tmp << "\n";
      return;
    }
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    std::cerr << "fake_powercap_driver: cannot rename " << tmp << "\n";
  }
}

// The zone keys FILE names; none when it does not exist.
std::set<std::string> read_stall_file(const std::string& file) {
  std::set<std::string> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    for (std::size_t start = 0; start < line.size();) {
      std::size_t end = line.find_first_of(", ", start);
      if (end == std::string::npos) end = line.size();
      if (end > start) out.insert(line.substr(start, end - start));
      start = end + 1;
    }
  }
  return out;
}

double seconds_since(const timespec& a, const timespec& b) {
  return static_cast<double>(b.tv_sec - a.tv_sec) +
         static_cast<double>(b.tv_nsec - a.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root, scenario_name, watts_arg, follow_arg, report, stall_file;
  double period_ms = 50, duration_s = 0;
  std::optional<uint64_t> max_range;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(std::string(arg) + " needs a value");
      return argv[++i];
    };
    if (arg == "--root") {
      root = next();
    } else if (arg == "--scenario") {
      scenario_name = next();
    } else if (arg == "--watts") {
      watts_arg = next();
    } else if (arg == "--follow-load") {
      follow_arg = next();
    } else if (arg == "--period-ms") {
      period_ms = parse_number(next(), "--period-ms");
    } else if (arg == "--max-range-uj") {
      std::string v = next();
      uint64_t n = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n == 0) usage("bad --max-range-uj");
      max_range = n;
    } else if (arg == "--duration-s") {
      duration_s = parse_number(next(), "--duration-s");
    } else if (arg == "--report") {
      report = next();
    } else if (arg == "--stall-file") {
      stall_file = next();
    } else {
      usage("unknown argument " + std::string(arg));
    }
  }
  if (root.empty()) usage("--root is required");
  if (period_ms < 1) usage("--period-ms must be at least 1");
  auto scenario = wattprobe::testing::powercap_scenario(scenario_name);
  if (!scenario) usage("unknown --scenario \"" + scenario_name + "\"");
  if (max_range) {
    for (auto& z : scenario->zones) z.max_energy_range_uj = *max_range;
  }

  std::optional<double> follow_idle, follow_k;
  if (!follow_arg.empty()) {
    auto f = parse_pairs(follow_arg, "--follow-load");
    if (!f.count("idle") || !f.count("k") || f.size() != 2) usage("--follow-load needs idle=,k=");
    follow_idle = f["idle"];
    follow_k = f["k"];
  }

  try {
    PowercapDriver driver(SysfsWriter(root), *scenario);
    for (const auto& [domain, w] : parse_pairs(watts_arg, "--watts")) {
      if (driver.set_domain_watts(domain, w) == 0) {
        usage("no " + domain + " zone in scenario " + scenario_name);
      }
    }
    std::optional<CpuTimes> last_cpu;
    double busy = 0;
    double carried_busy_s = 0;  // CPU-seconds of busy time owed to (< 0: taken from) next periods
    const long clock_ticks_per_s = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
    if (follow_idle) {
      last_cpu = read_host_cpu();
      if (!last_cpu) usage("cannot read the host's /proc/stat for --follow-load");
      driver.set_domain_watts("package", *follow_idle);
    }

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    timespec start{}, last{}, now{};
    clock_gettime(CLOCK_MONOTONIC, &start);
    last = start;
    if (!report.empty()) write_report(report, driver, 0, busy);
    std::cout << "ready" << std::endl;

    const auto period_ns = static_cast<long long>(period_ms * 1e6);
    timespec deadline = start;
    while (!g_stop) {
      long long ns = deadline.tv_nsec + period_ns;
      deadline.tv_sec += static_cast<time_t>(ns / 1000000000);
      deadline.tv_nsec = static_cast<long>(ns % 1000000000);
      while (!g_stop &&
             clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr) == EINTR) {
      }
      clock_gettime(CLOCK_MONOTONIC, &now);
      // After a SIGSTOP the deadlines are in the past; start again from now rather than catch up.
      if (seconds_since(deadline, now) > period_ms / 1000) deadline = now;
      if (follow_idle) {
        // The load of the period just ended sets its power: the CPUs' capacity over the period
        // less their idle time. /proc/stat shows idle in 10 ms units, so one period can read
        // more or less idle than it had; what falls outside [0, capacity] is carried to the
        // next periods rather than clamped away, so the energy of any stretch follows its busy
        // time.
        if (auto cpu = read_host_cpu()) {
          const double capacity_s = cpu->cpus * seconds_since(last, now);
          const double idle_s = static_cast<double>(cpu->idle - last_cpu->idle) /
                                static_cast<double>(clock_ticks_per_s);
          const double busy_s = capacity_s - idle_s + carried_busy_s;
          const double used_s = std::clamp(busy_s, 0.0, capacity_s);
          carried_busy_s = busy_s - used_s;
          busy = capacity_s > 0 ? used_s / capacity_s : 0;
          last_cpu = cpu;
        }
        driver.set_domain_watts("package", *follow_idle + *follow_k * busy);
      }
      if (!stall_file.empty()) {
        std::set<std::string> held = read_stall_file(stall_file);
        for (const auto& z : driver.scenario().zones)
          driver.set_zone_held(z.key, held.count(z.key));
      }
      driver.advance(seconds_since(last, now));
      last = now;
      const double elapsed = seconds_since(start, now);
      if (!report.empty()) write_report(report, driver, elapsed, busy);
      if (duration_s > 0 && elapsed >= duration_s) break;
    }
    if (!report.empty()) write_report(report, driver, seconds_since(start, last), busy);
  } catch (const std::exception& e) {
    std::cerr << "fake_powercap_driver: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
