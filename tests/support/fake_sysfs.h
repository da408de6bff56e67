#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/temp_tree.h"

namespace wattprobe::testing {

/// max_energy_range_uj as real hosts print it: Intel (ESU 2^-14 J × 2^32) and AMD EPYC.
inline constexpr uint64_t kIntelMaxEnergyRangeUj = 262143328850;
inline constexpr uint64_t kEpycMaxEnergyRangeUj = 65532610987;

/// One powercap zone as the kernel shows it under /sys/class/powercap/<key>.
struct FakeZone {
  std::string key;   // folder name, ids in hex: "intel-rapl:0", "intel-rapl:0:a"
  std::string name;  // contents of `name`: "package-0", "core", "dram", "psys", ...
  uint64_t energy_uj = 0;
  uint64_t max_energy_range_uj = kIntelMaxEnergyRangeUj;
  bool enabled = true;
};

struct PowercapScenario {
  std::string name;
  std::vector<FakeZone> zones;  // parents before their subzones
  bool control_type_enabled = true;
  /// Newer Intel clients also register the package through MMIO as a second control type,
  /// `intel-rapl-mmio:0`, counting the same energy; readers must skip it.
  bool with_mmio_duplicate = false;
};

/// Client laptop/desktop: package-0 with core and uncore, plus the intel-rapl-mmio duplicate.
PowercapScenario one_socket();
/// Xeon server: package-0, package-1, each with a dram subzone.
PowercapScenario two_socket_with_dram();
/// AMD Zen (intel_rapl_msr on Fam17h+): package-0 and its core subzone, EPYC range.
PowercapScenario amd_zen();
/// one_socket() with the core subzone's `enabled` at 0.
PowercapScenario disabled_zone();
/// one_socket() plus a top-level psys zone (intel-rapl:1), as on recent clients.
PowercapScenario psys_platform();
/// By name, for the driver tool: one_socket, two_socket_with_dram, amd_zen, disabled_zone,
/// psys_platform.
std::optional<PowercapScenario> powercap_scenario(std::string_view name);

/// Writes sysfs files under a root that stands for the host's / (a TempTree's root, or the
/// folder an end-to-end test hands the driver tool). A file that exists is rewritten in place
/// (write_file_in_place), as the kernel updates an attribute, so a reader holding it open sees
/// the new value; a new file is written atomically.
class SysfsWriter {
 public:
  explicit SysfsWriter(std::filesystem::path root) : root_(std::move(root)) {}
  explicit SysfsWriter(const TempTree& tree) : root_(tree.root()) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path path(std::string_view rel) const;
  void write(std::string_view rel, std::string_view contents) const;
  void write_u64(std::string_view rel, uint64_t value) const;
  void symlink(std::string_view target, std::string_view rel) const;
  void chmod(std::string_view rel, std::filesystem::perms perms) const;

 private:
  std::filesystem::path root_;
};

/// "sys/class/powercap/<key>/<file>": the path readers use (through the class symlink).
std::string powercap_file(std::string_view key, std::string_view file);
/// The zone's real folder, "sys/devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:1".
std::string powercap_device_dir(std::string_view key);

/// Writes the whole tree: the control type folder (with `enabled`), every zone folder nested under
/// its parent in /sys/devices/virtual/powercap, and the flat /sys/class/powercap symlinks. Zone
/// files: name, energy_uj (0400 since CVE-2020-8694), max_energy_range_uj, enabled, and the
/// constraint_* files a capping tool would use.
void write_powercap(const SysfsWriter& out, const PowercapScenario& scenario);

/// One hwmon chip: /sys/class/hwmon/hwmon<index> → its device's hwmon folder.
struct FakeHwmonChip {
  int index = 0;
  std::string name;  // contents of `name`: "power_meter", "amd_energy", "acpitz"
  std::string
      device_dir;  // rel. path of the device under sys/, e.g. "devices/platform/amd_energy.0"
  std::vector<std::pair<std::string, std::string>> files;  // attribute → contents (with "\n")
};

struct HwmonScenario {
  std::vector<FakeHwmonChip> chips;
};

/// ACPI power meter (acpi_power_meter driver, chip name "power_meter") reporting 182.5 W in
/// power1_average, beside an acpitz thermal chip that has no power sensor.
HwmonScenario hwmon_acpi_power_meter();
/// Out-of-tree amd_energy on 2 sockets × 2 cores: energy1..4 are Ecore000..Ecore003, energy5/6
/// are Esocket0/Esocket1, µJ accumulated to 64 bits by the driver.
HwmonScenario hwmon_amd_energy();
/// An amdgpu chip (hwmon5, PCI device 0000:03:00.0) drawing 35 W in power1_average, its power
/// cap 203 W in power1_cap (µW) and the largest settable cap, 241 W, in power1_cap_max.
HwmonScenario hwmon_amdgpu();

/// "sys/class/hwmon/hwmon<index>/<file>".
std::string hwmon_file(int index, std::string_view file);
void write_hwmon(const SysfsWriter& out, const HwmonScenario& scenario);

/// Drives a powercap tree like the hardware: every advance adds watts × seconds to each zone's
/// energy_uj, wrapping to 0 at max_energy_range_uj (Δ = (max − prev) + cur on a wrap, as readers
/// compute it), and keeps the exact energy it added per zone for tests to compare with.
/// Not thread-safe.
class PowercapDriver {
 public:
  /// Writes the scenario's tree under `out`'s root.
  PowercapDriver(SysfsWriter out, PowercapScenario scenario);

  /// Sets the power of every zone of a domain: "package" (all package-N[-die-M] zones), "core",
  /// "uncore", "dram", "psys". Returns how many zones matched.
  int set_domain_watts(std::string_view domain, double watts);
  void set_zone_watts(std::string_view key, double watts);
  /// A held zone's energy_uj stands still, whatever its watts, as a counter the hypervisor does
  /// not advance; released, it moves on from the value it held (the held time adds nothing).
  void set_zone_held(std::string_view key, bool held);

  /// Adds round(watts × seconds × 1e6) µJ (fractions carried to the next advance) to every zone
  /// and rewrites its energy_uj. Zones whose files a test removed are skipped.
  void advance(double seconds);

  /// Exact energy added to a zone since construction, in µJ and joules.
  uint64_t added_uj(std::string_view key) const;
  double added_joules(std::string_view key) const;
  /// The value energy_uj holds now.
  uint64_t energy_uj(std::string_view key) const;
  double watts(std::string_view key) const;

  const PowercapScenario& scenario() const { return scenario_; }
  const SysfsWriter& writer() const { return out_; }

 private:
  struct ZoneState {
    double watts = 0;
    bool held = false;
    double carry_uj = 0;
    uint64_t added_uj = 0;
  };
  const FakeZone* zone(std::string_view key) const;

  SysfsWriter out_;
  PowercapScenario scenario_;
  std::map<std::string, ZoneState, std::less<>> state_;
};

/// The domain a zone `name` belongs to: "package-1-die-0" → "package", "dram" → "dram".
std::string fake_zone_domain(std::string_view name);

}  // namespace wattprobe::testing
