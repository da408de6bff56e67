#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/held_file.h"
#include "agent/base/host_paths.h"
#include "agent/base/snapshot.h"
#include "collectors/energy_source.h"
#include "collectors/gpu/gpu_power_limit.h"

namespace wattprobe {

/// Power and energy sensors of hwmon chips (Documentation/hwmon/sysfs-interface.rst):
/// /sys/class/hwmon/hwmonN/{powerK_average,powerK_input} in µW and energyK_input in µJ.
///
/// Domain table (chip `name` → domain):
///   amd_energy            energyK labelled "Esocket<N>" → package, socket N; "Ecore<NNN>" skipped
///                         (the socket counter already covers its cores; adding both would count
///                         the cores twice)
///   power_meter           (ACPI power meter, acpi_power_meter driver) → platform
///   amdgpu, i915, xe, nouveau → gpu, socket = the GPU's place among those chips (0, 1, ...),
///                         so two GPUs never share a series
///   any other chip with a power or energy sensor → platform
///   a chip with neither but with voltage and current rails (inK_input mV, currK_input mA, as
///   ina3221 on NVIDIA Jetson boards) → power = V × I per rail, integrated over each tick.
///   Rails pair per driver (docs/methodology.md "Power rails"): ina3221 channel K is inK with
///   currK for K = 1..3 (in4..in6 are its shunt voltages, never paired); any other driver pairs
///   inK with currK only where both carry the same label. The rail labelled as the board's
///   input (a label ending in "_IN": VDD_IN, POM_5V_IN) is the chip's platform figure and the
///   others are parts of it, exported in domain "rail" (one socket per rail) and never added;
///   without such a rail the parts are summed into the platform figure.
/// Per sensor K: powerK_average is preferred over powerK_input because a Reading's power is a
/// mean since the last sample and the average is closer to that than an instant value. A chip
/// that has energy counters gives only those: integrating its power gauges as well would count
/// the same energy twice. Each sensor file is opened by probe() and held, so sample() keeps
/// reading a root-only input (amd_energy's are 0400) after the agent drops its privileges.
class HwmonSource : public EnergySource {
 public:
  explicit HwmonSource(const HostPaths& paths);

  std::string_view name() const override { return "hwmon"; }
  /// amdgpu, i915, xe and nouveau sensors measure a GPU; any other sensor counts the CPU's side.
  bool measures_cpu() const override;
  Availability probe() override;
  Sample sample() override;

  struct Sensor {
    /// "<chip>/<sensor>", e.g. "power_meter/power1"; "<chip>@<device>/<sensor>" when two chips
    /// share a name. Stable across reboots, unlike hwmonN numbers.
    std::string key;
    std::string domain;
    int socket = -1;
    ReadingKind kind = ReadingKind::energy_counter;
    std::filesystem::path file;
    std::string label;
    /// The chip's PCI device ("0000:03:00.0", its `device` link), where it is one: a GPU's DRM
    /// clients name it as drm-pdev.
    std::string pci_address = {};
    HeldFile held = {};  // open since probe(); closed when it could not be opened then
    /// A rail read as voltage × current: `file` is inK_input, this currK_input. Empty for power
    /// and energy sensors.
    std::filesystem::path current_file = {};
    /// For rails: "total" (the board's input, domain platform), "part" (domain rail, never
    /// added), "sum" (domain platform: the chip's parts added up, when it has no total rail).
    std::string rail_role = {};
    std::vector<std::size_t> sum_of = {};  // "sum": indices into sensors() of the parts it adds
  };
  const std::vector<Sensor>& sensors() const { return sensors_; }
  /// "GPUs (hwmon)": each GPU sensor and whether a process holds a DRM client of its device now
  /// (its dynamic energy is split by the kernel's DRM busy time, never by CPU time); none
  /// without GPU sensors.
  DoctorSection doctor_section() override;

  /// Each GPU chip's power limit as of the last sample(): power1_cap (µW, the cap the driver
  /// acts on: Documentation/hwmon/sysfs-interface.rst, amdgpu), or for i915 and xe, which have
  /// no cap, power1_max (their PL1 sustained limit; 0 = off). Never power1_cap_max: that is the
  /// largest cap one may set, not the one in force.
  std::vector<GpuPowerLimit> gpu_power_limits() const;

  /// wattprobe_hwmon_rail_info: one series per rail, saying its energy is integrated power.
  void append_families(std::vector<Family>& out) const override;

 private:
  HostPaths paths_;
  bool probed_ = false;
  int rail_rows_ = 0;
  std::vector<Sensor> sensors_;
  struct LimitFile {
    int socket = -1;
    std::filesystem::path file;  // empty: the chip has no limit attribute
    std::optional<double> watts;
    std::string why;
    std::string logged;  // the last read problem logged, to log each once
  };
  std::vector<LimitFile> limits_;
  void read_power_limits();
};

std::unique_ptr<EnergySource> make_hwmon_source(const HostPaths& paths);

}  // namespace wattprobe
