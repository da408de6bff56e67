#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/held_file.h"
#include "agent/base/host_paths.h"
#include "collectors/energy_source.h"

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
    std::string pci_address;
    HeldFile held;  // open since probe(); closed when it could not be opened then
  };
  const std::vector<Sensor>& sensors() const { return sensors_; }

 private:
  HostPaths paths_;
  bool probed_ = false;
  std::vector<Sensor> sensors_;
};

std::unique_ptr<EnergySource> make_hwmon_source(const HostPaths& paths);

}  // namespace wattprobe
