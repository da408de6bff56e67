#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

enum class ReadingKind {
  energy_counter,  // cumulative `raw` in units of `unit_joules`, wrapping at `modulus`
  power_gauge,     // `watts` averaged since the previous sample (hwmon power*, the model)
};

/// One counter or gauge as the hardware reports it. Sources do not compute deltas, handle
/// wraparound or attribute anything (docs/architecture.md): the agent's EnergyMeter does that,
/// once.
struct Reading {
  std::string domain;  // package, core, uncore, dram, psys, gpu, platform
  int socket = -1;     // package / socket index; -1 when the reading is not per socket
  std::string key;     // stable within the source across ticks, e.g. "intel-rapl:0:1"
  ReadingKind kind = ReadingKind::energy_counter;
  uint64_t raw = 0;
  /// The counter runs 0..modulus-1 and then wraps to 0. 0 means the full 64-bit range (a counter
  /// the kernel already widened, such as perf's).
  uint64_t modulus = 0;
  double unit_joules = 1e-6;
  double watts = 0;
  /// A counter that never wraps in practice (NVML's 64-bit mJ): a value below the previous one
  /// means it restarted (a driver reload), and the tick counts nothing rather than a wrap.
  bool reset_when_lower = false;
  /// False for a figure the source passes on as an estimate although the source measures (the
  /// `host` source, where the host estimated that domain): labelled measured="false".
  bool measured = true;
  /// The source knows the counter stopped (the `host` source whose writer went away or stopped
  /// ticking): stalled now, without waiting for CPU evidence, until it moves again.
  bool known_stalled = false;
};

struct Sample {
  std::vector<Reading> readings;
  /// Per-counter failures of this sample; counted as
  /// wattprobe_agent_collector_errors_total{collector=name(),reason=kind}. The source's other
  /// readings are still good.
  std::vector<Error> errors;
};

/// A source's options contradict what it found at start (the BMC has several chassis with power
/// data and --redfish-chassis names none): `run` and `doctor` exit 2 with this message.
class SourceUsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Availability {
  bool available = false;
  /// Why it is (not) available, in a user's words: "no /sys/class/powercap: kernel built without
  /// CONFIG_POWERCAP or not an x86 host", "2 zones: package-0, dram".
  std::string reason;
  /// How to make it available, when something can be done ("run as root or add a udev rule ...").
  std::string remedy;
};

/// What `doctor` says of a source beyond its availability, under a heading of its own (the GPUs
/// NVML lists, hwmon's GPU sensors and who holds them, the VM's host file). No title: nothing.
struct DoctorSection {
  std::string title;
  std::vector<std::string> lines;  // printed indented, without newlines
};

/// An energy source (collectors/<name>.{h,cc}). Not thread-safe: the sampling loop owns it.
class EnergySource {
 public:
  virtual ~EnergySource() = default;
  /// The source's one name: registry key, --sources value, source= label, config section.
  virtual std::string_view name() const = 0;
  /// False only for estimates (`model`): it labels every figure measured="false".
  virtual bool measured() const { return true; }
  /// Whether it measures the CPU's energy (package, psys, a platform meter), not only GPUs.
  /// `auto` adds the `model` estimate of the CPU when no chosen source does, and only such
  /// sources go through the start-up stall check (the check loads the CPU, not a GPU).
  virtual bool measures_cpu() const { return measured(); }
  /// Whether it says itself when its counters stop (Reading::known_stalled), as the `host` source
  /// does from the host's sequence number. Its counters are then not judged by the CPU evidence
  /// (a guest busy between two host ticks proves nothing) nor by the start-up check.
  virtual bool knows_stalls() const { return false; }
  /// Discovers what the host offers. Called at start and by `doctor`; may be called again.
  virtual Availability probe() = 0;
  /// Reads every counter found by probe(). Never throws.
  virtual Sample sample() = 0;
  /// The source's own families, beyond the energy the meter books from its readings (hwmon's
  /// rails, a BMC's info series): added to every snapshot after the tick. The pipeline calls it
  /// on every chosen source and names none.
  virtual void append_families(std::vector<Family>&) const {}
  /// Called by doctor after probe(), so doctor names no source: the registry's choice keeps it
  /// in SourceStatus::doctor.
  virtual DoctorSection doctor_section() { return {}; }
};

}  // namespace wattprobe
