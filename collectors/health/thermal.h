#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// CPU thermal-throttle events (x86 therm_throt,
/// Documentation/ABI/testing/sysfs-devices-system-cpu):
/// /sys/devices/system/cpu/cpuN/thermal_throttle/{core,package}_throttle_count. The core count is
/// per CPU and summed; the package count is the same file in every CPU of a package, so it is
/// read once per topology/physical_package_id.
struct ThrottleCounts {
  bool found = false;  // some CPU has a thermal_throttle folder
  uint64_t core_events = 0;
  std::vector<std::pair<int, uint64_t>> package_events;  // by physical package id
  std::vector<Error> problems;
  std::string none_reason;
};

ThrottleCounts read_throttle_counts(const HostPaths& paths);

/// The hottest temperature sensor of one device: an hwmon chip's temp*_input (m°C,
/// Documentation/hwmon/sysfs-interface.rst), or a thermal zone
/// (/sys/class/thermal/thermal_zoneN/temp, m°C) whose type no hwmon chip already shows (the
/// kernel's thermal_hwmon registers most zones as hwmon chips too; they are counted once).
struct HottestSensor {
  std::string device;  // hwmon chip name ("coretemp", "nvme", "k10temp"), "<name>@<dev>" when two
                       // chips share a name, or the thermal zone's type
  std::string sensor;  // the sensor's label, else its file stem ("temp1")
  double celsius = 0;
};

struct Temperatures {
  std::vector<HottestSensor> devices;  // by device
  std::vector<Error> problems;         // sensors skipped, with why
  std::string none_reason;
};

Temperatures read_temperatures(const HostPaths& paths);

}  // namespace wattprobe
