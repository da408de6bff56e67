#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// One RAPL event of the perf_event `power` PMU (arch/x86/events/rapl.c), as sysfs describes it
/// under /sys/bus/event_source/devices/power/events/.
struct RaplPerfEvent {
  std::string event;    // "energy-pkg"
  std::string domain;   // "package"
  uint64_t config = 0;  // perf_event_attr.config, from "event=0x02"
  double scale = 0;     // joules per count, from energy-pkg.scale (2^-32 on every CPU so far)
};

struct RaplPerfPmu {
  uint32_t type = 0;  // perf_event_attr.type, from power/type
  std::vector<RaplPerfEvent> events;
  std::vector<int> cpus;  // power/cpumask: one CPU per package (or die)
};

/// "event=0x02" → 2. The PMU's format is config:0-7, so only a single `event=0x..` term up to 0xff
/// is accepted; anything else is malformed and names `path`.
Result<uint64_t> parse_perf_event_config(std::string_view text, const std::filesystem::path& path);
/// The .scale file: a finite number > 0.
Result<double> parse_perf_event_scale(std::string_view text, const std::filesystem::path& path);
/// The .unit file must say "Joules": a scale in another unit would be silently wrong.
Result<std::string> parse_perf_event_unit(std::string_view text, const std::filesystem::path& path);

/// The folder of the `power` PMU: <sysfs>/sys/bus/event_source/devices/power.
std::filesystem::path rapl_perf_pmu_dir(const HostPaths& paths);

/// Reads type, cpumask and the known RAPL events (energy-pkg → package, energy-cores → core,
/// energy-ram → dram, energy-gpu → gpu, energy-psys → psys). An event the kernel does not list is
/// simply not there (AMD has only energy-pkg); a listed event with a malformed description is
/// left out and its error appended to `skipped`. Fails when type or cpumask cannot be read.
Result<RaplPerfPmu> read_rapl_perf_pmu(const HostPaths& paths, std::vector<Error>& skipped);

/// The perf_event_open(2) seam: the kernel's counters in production, a fake in unit tests (this
/// host has no `power` PMU). File descriptors are owned by the caller through close().
class PerfCounters {
 public:
  virtual ~PerfCounters() = default;
  /// Opens a system-wide counting event on `cpu` (pid = -1). Returns the fd, or the errno as an
  /// Error (path names the event, e.g. "perf_event power/energy-pkg cpu 0").
  virtual Result<int> open(uint32_t type, uint64_t config, int cpu, const std::string& what) = 0;
  /// The event's 64-bit count.
  virtual Result<uint64_t> read(int fd, const std::string& what) = 0;
  virtual void close(int fd) = 0;
};

std::unique_ptr<PerfCounters> make_kernel_perf_counters();

/// `rapl_perf`: RAPL energy through the perf_event `power` PMU. Counts are 64-bit (the kernel
/// widens the 32-bit MSR with an hrtimer), so readings have modulus 0 and unit_joules = scale.
/// Needs perf_event_paranoid ≤ 0, CAP_PERFMON (≥ 5.8) or CAP_SYS_ADMIN to open; counters opened
/// at probe() stay readable after the agent drops those privileges.
class RaplPerfSource : public EnergySource {
 public:
  RaplPerfSource(HostPaths paths, std::unique_ptr<PerfCounters> counters);
  ~RaplPerfSource() override;
  RaplPerfSource(const RaplPerfSource&) = delete;
  RaplPerfSource& operator=(const RaplPerfSource&) = delete;

  std::string_view name() const override { return "rapl_perf"; }
  /// Opens one counter per (event, CPU in cpumask); closes and reopens on a repeated call.
  Availability probe() override;
  /// One energy_counter Reading per open counter, key "<event>/cpu<N>", socket = the CPU's
  /// physical_package_id.
  Sample sample() override;

 private:
  struct Counter {
    int fd = -1;
    RaplPerfEvent event;
    int cpu = 0;
    int socket = -1;
    std::string what;
  };
  void close_all();

  HostPaths paths_;
  std::unique_ptr<PerfCounters> perf_;
  std::vector<Counter> counters_;
};

std::unique_ptr<EnergySource> make_rapl_perf_source(const HostPaths& paths);

}  // namespace wattprobe
