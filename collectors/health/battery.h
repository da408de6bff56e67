#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// One battery as the kernel's power_supply class shows it
/// (Documentation/ABI/testing/sysfs-class-power): /sys/class/power_supply/<name> with
/// type "Battery". Every value is optional: a driver exposes what its firmware gives, and a value
/// that is absent, zero where zero is meaningless, or not a number is left out with the reason
/// in `problems` (doctor prints them), never guessed.
struct BatteryHealth {
  std::string name;  // the folder name: BAT0, BAT1, macsmc-battery
  /// energy_full / energy_full_design (µWh), or charge_full / charge_full_design (µAh) where the
  /// driver counts charge; above 1 for a new cell that beats its design.
  std::optional<double> capacity_ratio;
  std::string capacity_from;  // "energy" or "charge"
  std::optional<uint64_t> cycle_count;
  /// `status` is "Discharging": the device runs on this battery.
  bool discharging = false;
  /// The power the battery gives while discharging: power_now (µW), else current_now (µA) ×
  /// voltage_now (µV). Drivers differ in the sign of these while discharging, so the magnitude
  /// is taken. 0 while not discharging.
  std::optional<double> discharge_watts;
  std::string power_from;  // "power_now" or "current_now x voltage_now"
  std::vector<Error> problems;
};

struct BatteryScan {
  std::vector<BatteryHealth> batteries;  // by name
  /// Why there is none ("no /sys/class/power_supply", "2 supplies, none of type Battery").
  std::string none_reason;
};

/// Reads every battery under <sysfs-root>/sys/class/power_supply. Never throws.
BatteryScan read_batteries(const HostPaths& paths);

}  // namespace wattprobe
