#include "collectors/energy/rapl_perf.h"

#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <map>

#include "agent/base/text_file.h"
#include "collectors/cpu/cpu_topology.h"

namespace wattprobe {

namespace {

struct KnownEvent {
  std::string_view event;
  std::string_view domain;
};

// arch/x86/events/rapl.c: the events the `power` PMU may list, and our domain names for them.
constexpr KnownEvent kKnownEvents[] = {
    {"energy-pkg", "package"}, {"energy-cores", "core"}, {"energy-ram", "dram"},
    {"energy-gpu", "gpu"},     {"energy-psys", "psys"},
};

bool is_hex_digit(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

}  // namespace

Result<uint64_t> parse_perf_event_config(std::string_view text, const std::filesystem::path& path) {
  std::string_view t = trim(text);
  constexpr std::string_view kPrefix = "event=0x";
  auto bad = [&] {
    return Error{ErrorKind::malformed, path.string(),
                 quote_for_error(t) + " is not \"event=0x..\" with a code up to 0xff"};
  };
  if (!t.starts_with(kPrefix)) return bad();
  std::string_view hex = t.substr(kPrefix.size());
  if (hex.empty() || hex.size() > 4) return bad();
  for (char c : hex)
    if (!is_hex_digit(c)) return bad();
  uint64_t code = 0;
  std::from_chars(hex.data(), hex.data() + hex.size(), code, 16);
  if (code > 0xff) return bad();
  return code;
}

Result<double> parse_perf_event_scale(std::string_view text, const std::filesystem::path& path) {
  auto scale = parse_double(text, path);
  if (!scale) return scale.error();
  if (!(*scale > 0)) {
    return Error{ErrorKind::malformed, path.string(),
                 quote_for_error(trim(text)) + " is not a positive scale"};
  }
  return *scale;
}

Result<std::string> parse_perf_event_unit(std::string_view text,
                                          const std::filesystem::path& path) {
  std::string_view t = trim(text);
  if (t != "Joules") {
    return Error{ErrorKind::unsupported, path.string(),
                 "unit " + quote_for_error(t) + ", expected \"Joules\""};
  }
  return std::string(t);
}

std::filesystem::path rapl_perf_pmu_dir(const HostPaths& paths) {
  return paths.sys("bus/event_source/devices/power");
}

Result<RaplPerfPmu> read_rapl_perf_pmu(const HostPaths& paths, std::vector<Error>& skipped) {
  const std::filesystem::path dir = rapl_perf_pmu_dir(paths);
  RaplPerfPmu pmu;

  auto type = read_u64(dir / "type");
  if (!type) return type.error();
  if (*type > UINT32_MAX) {
    return Error{ErrorKind::malformed, (dir / "type").string(),
                 std::to_string(*type) + " does not fit perf_event_attr.type"};
  }
  pmu.type = static_cast<uint32_t>(*type);

  auto mask_text = read_text(dir / "cpumask");
  if (!mask_text) return mask_text.error();
  auto cpus = parse_cpu_list(*mask_text, dir / "cpumask");
  if (!cpus) return cpus.error();
  if (cpus->empty()) {
    return Error{ErrorKind::malformed, (dir / "cpumask").string(), "empty: no CPU to count on"};
  }
  pmu.cpus = std::move(*cpus);

  for (const KnownEvent& known : kKnownEvents) {
    const std::filesystem::path base = dir / "events" / std::string(known.event);
    auto config_text = read_text(base);
    if (!config_text) {
      if (config_text.error().kind != ErrorKind::absent) skipped.push_back(config_text.error());
      continue;
    }
    auto config = parse_perf_event_config(*config_text, base);
    std::filesystem::path scale_path = base;
    scale_path += ".scale";
    std::filesystem::path unit_path = base;
    unit_path += ".unit";
    auto scale_text = read_text(scale_path);
    auto unit_text = read_text(unit_path);

    if (!config) {
      skipped.push_back(config.error());
      continue;
    }
    if (!scale_text) {
      skipped.push_back(scale_text.error());
      continue;
    }
    if (!unit_text) {
      skipped.push_back(unit_text.error());
      continue;
    }
    auto scale = parse_perf_event_scale(*scale_text, scale_path);
    if (!scale) {
      skipped.push_back(scale.error());
      continue;
    }
    auto unit = parse_perf_event_unit(*unit_text, unit_path);
    if (!unit) {
      skipped.push_back(unit.error());
      continue;
    }

    pmu.events.push_back(
        RaplPerfEvent{std::string(known.event), std::string(known.domain), *config, *scale});
  }
  return pmu;
}

namespace {

class KernelPerfCounters : public PerfCounters {
 public:
  Result<int> open(uint32_t type, uint64_t config, int cpu, const std::string& what) override {
    perf_event_attr attr;
    std::memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = type;
    attr.config = config;
    // Counting only: the RAPL PMU refuses sampling and per-task events (EINVAL).
    long fd = ::syscall(SYS_perf_event_open, &attr, /*pid=*/-1, cpu, /*group_fd=*/-1,
                        PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) return error_from_errno(errno, what, "perf_event_open");
    return static_cast<int>(fd);
  }

  Result<uint64_t> read(int fd, const std::string& what) override {
    uint64_t count = 0;
    for (;;) {
      ssize_t n = ::read(fd, &count, sizeof count);
      if (n == static_cast<ssize_t>(sizeof count)) return count;
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return error_from_errno(errno, what, "read");
      return Error{ErrorKind::transient, what,
                   "read returned " + std::to_string(n) + " bytes, expected 8"};
    }
  }

  void close(int fd) override { ::close(fd); }
};

std::string paranoid_level(const HostPaths& paths) {
  auto text = read_text(paths.proc("sys/kernel/perf_event_paranoid"));
  return text ? std::string(trim(*text)) : std::string("unknown");
}

}  // namespace

std::unique_ptr<PerfCounters> make_kernel_perf_counters() {
  return std::make_unique<KernelPerfCounters>();
}

RaplPerfSource::RaplPerfSource(HostPaths paths, std::unique_ptr<PerfCounters> counters)
    : paths_(std::move(paths)), perf_(std::move(counters)) {}

RaplPerfSource::~RaplPerfSource() { close_all(); }

void RaplPerfSource::close_all() {
  for (Counter& c : counters_)
    if (c.fd >= 0) perf_->close(c.fd);
  counters_.clear();
}

Availability RaplPerfSource::probe() {
  close_all();
  Availability a;
  const std::filesystem::path dir = rapl_perf_pmu_dir(paths_);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    a.reason = "no " + dir.string() +
               ": kernel built without CONFIG_PERF_EVENTS_INTEL_RAPL, or the RAPL PMU is not "
               "exposed on this host (usual in VMs)";
    return a;
  }

  std::vector<Error> problems;
  auto pmu = read_rapl_perf_pmu(paths_, problems);
  if (!pmu) {
    a.reason = pmu.error().message();
    return a;
  }
  if (pmu->events.empty()) {
    a.reason = "the power PMU lists no usable RAPL event";
    for (const Error& e : problems) a.reason += "; " + e.message();
    return a;
  }

  std::map<int, int> socket_of_cpu;
  for (int cpu : pmu->cpus) {
    auto package = read_package_of_cpu(paths_, cpu);
    if (!package) {
      problems.push_back(package.error());
      continue;
    }
    socket_of_cpu[cpu] = *package;
  }

  bool permission_denied = false;
  for (const RaplPerfEvent& event : pmu->events) {
    for (auto [cpu, socket] : socket_of_cpu) {
      std::string what = "perf_event power/" + event.event + " cpu " + std::to_string(cpu);
      auto fd = perf_->open(pmu->type, event.config, cpu, what);
      if (!fd) {
        permission_denied |= fd.error().kind == ErrorKind::permission;
        problems.push_back(fd.error());
        continue;
      }
      counters_.push_back(Counter{*fd, event, cpu, socket, std::move(what)});
    }
  }

  if (permission_denied) {
    a.remedy =
        "grant CAP_PERFMON (Linux >= 5.8) or CAP_SYS_ADMIN, or run: sysctl "
        "kernel.perf_event_paranoid=0 (now " +
        paranoid_level(paths_) + ")";
  }
  if (counters_.empty()) {
    a.reason = problems.empty() ? "no counter could be opened" : problems.front().message();
    if (problems.size() > 1) {
      a.reason += " (and " + std::to_string(problems.size() - 1) + " more)";
    }
    return a;
  }

  a.available = true;
  a.reason = std::to_string(counters_.size()) + " counters:";
  std::string last_event;
  for (const Counter& c : counters_) {
    if (c.event.event != last_event) {
      a.reason += (last_event.empty() ? " " : "; ") + c.event.event + " (" + c.event.domain +
                  ") on CPU " + std::to_string(c.cpu);
      last_event = c.event.event;
    } else {
      a.reason += "," + std::to_string(c.cpu);
    }
  }
  for (const Error& e : problems) a.reason += "; skipped " + e.message();
  return a;
}

Sample RaplPerfSource::sample() {
  Sample s;
  for (const Counter& c : counters_) {
    auto count = perf_->read(c.fd, c.what);
    if (!count) {
      s.errors.push_back(count.error());
      continue;
    }
    Reading r;
    r.domain = c.event.domain;
    r.socket = c.socket;
    r.key = c.event.event + "/cpu" + std::to_string(c.cpu);
    r.kind = ReadingKind::energy_counter;
    r.raw = *count;
    r.modulus = 0;
    r.unit_joules = c.event.scale;
    s.readings.push_back(std::move(r));
  }
  return s;
}

std::unique_ptr<EnergySource> make_rapl_perf_source(const HostPaths& paths) {
  return std::make_unique<RaplPerfSource>(paths, make_kernel_perf_counters());
}

}  // namespace wattprobe
