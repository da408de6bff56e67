#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/held_file.h"
#include "agent/base/host_paths.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// What a powercap zone's `name` says it measures.
struct RaplZoneName {
  std::string domain;  // package, core, uncore, dram, psys
  int socket = -1;     // from package-N; -1 for core/uncore/dram/psys until the parent is known
  int die = -1;        // from package-N-die-M
};

/// "package-0" → {package, 0}, "package-1-die-1" → {package, 1, die 1}, "dram" → {dram}; any
/// other name (a future domain) → nullopt, so a reader skips rather than mislabels it.
std::optional<RaplZoneName> parse_rapl_zone_name(std::string_view name);

/// RAPL energy counters through the powercap sysfs class (intel_rapl_msr, also AMD Fam17h+):
/// every /sys/class/powercap/intel-rapl:N[:M] zone, one energy_counter Reading each, keyed by
/// the zone folder. See Documentation/ABI/testing/sysfs-class-powercap.
///  - The `intel-rapl-mmio` control type is skipped: it is the same package counter again.
///  - modulus = max_energy_range_uj, the wrap rule Kepler uses, Δ = (max − prev) + cur; an
///    energy_uj equal to max is reported as 0 (see sample()); above max is malformed.
///  - A zone with `enabled` 0 is still read (disabling turns off capping, not the energy status
///    register) and probe() says so; if its energy_uj is unreadable at probe it is left out.
///  - Subzones (core, uncore, dram) take the socket of their parent package-N; a top-level psys
///    has socket -1; package-N-die-M keeps socket N with its own key.
///  - Each energy_uj is opened by probe() and held: sample() reads it again with pread, so the
///    agent keeps reading the root-only file after it drops to an unprivileged user.
class RaplPowercapSource : public EnergySource {
 public:
  explicit RaplPowercapSource(const HostPaths& paths);

  std::string_view name() const override { return "rapl_powercap"; }
  Availability probe() override;
  /// One Reading per zone found by the last probe() (probes first if never probed). A zone whose
  /// energy_uj cannot be read or parsed gives an Error instead; the others are still read.
  Sample sample() override;

  struct Zone {
    std::string key;   // "intel-rapl:0:1"
    std::string name;  // "dram"
    std::string domain;
    int socket = -1;
    bool enabled = true;
    uint64_t max_energy_range_uj = 0;
    std::filesystem::path energy_file;
    /// Open since probe(); closed when energy_uj could not be opened then (sample() retries).
    HeldFile energy;
  };
  /// The zones the last probe() will read, in id order.
  const std::vector<Zone>& zones() const { return zones_; }

 private:
  HostPaths paths_;
  bool probed_ = false;
  std::vector<Zone> zones_;
};

std::unique_ptr<EnergySource> make_rapl_powercap_source(const HostPaths& paths);

}  // namespace wattprobe
