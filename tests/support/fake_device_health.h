#pragma once

#include <optional>
#include <string_view>

#include "tests/support/fake_sysfs.h"

namespace wattprobe::testing {

/// A laptop with two batteries, both discharging, and its mains adapter:
///   BAT0 counts energy (µWh): energy_full 41800000 / energy_full_design 50000000 = 0.836,
///        cycle_count 312, power_now 9500000 µW = 9.5 W;
///   BAT1 counts charge (µAh): charge_full 3000000 / charge_full_design 4000000 = 0.75,
///        cycle_count 57, no power_now: current_now 1200000 µA × voltage_now 11400000 µV = 13.68 W.
void write_laptop_batteries(const SysfsWriter& out);
inline constexpr double kBat0CapacityRatio = 0.836;
inline constexpr double kBat1CapacityRatio = 0.75;
inline constexpr double kBat0Watts = 9.5;
inline constexpr double kBat1Watts = 13.68;

/// Batteries whose values cannot be used: BAT0 has energy_full but no energy_full_design, BAT1
/// a charge_full_design of 0, BAT2 an energy_full of "garbage" and a cycle_count of "-1x".
/// None may give a capacity ratio.
void write_malformed_batteries(const SysfsWriter& out);

/// x86 thermal_throttle on 4 CPUs in 2 packages (cpu0, cpu1 in package 0; cpu2, cpu3 in 1):
/// core_throttle_count 3, 5, 0, 7 (sum 15); package_throttle_count 11 in package 0, 2 in 1 (each
/// file repeated in every CPU of its package, as the kernel shows it).
void write_throttle_counters(const SysfsWriter& out);
inline constexpr uint64_t kCoreThrottleEvents = 15;

/// coretemp (hwmon3: "Package id 0" 71 °C, "Core 0" 65 °C), nvme (hwmon4: "Composite" 45.85 °C)
/// and a thermal zone of type acpitz (52 °C) that no hwmon chip shows.
void write_temperatures(const SysfsWriter& out);

/// A Jetson Orin's ina3221 (hwmon0, at 1-0040): in1..in3 the channels' bus voltages (mV),
/// curr1..curr3 their currents (mA), in4..in6 the shunt voltages, labels on in1..in3:
///   VDD_IN 19000 mV × 500 mA = 9.5 W (the board's input), VDD_CPU_GPU_CV 19000 × 150 = 2.85 W,
///   VDD_SOC 19000 × 100 = 1.9 W.
HwmonScenario hwmon_ina3221_jetson();
inline constexpr double kJetsonBoardWatts = 9.5;
inline constexpr double kJetsonCpuGpuWatts = 2.85;
inline constexpr double kJetsonSocWatts = 1.9;

/// hwmon_ina3221_jetson() without a board input: channel 1 labelled VDD_GPU. The chip's
/// platform figure is then the sum of its three rails, 14.25 W.
HwmonScenario hwmon_ina3221_without_input();

/// An NVMe controller (nvme0, model "Fixture NVMe 1TB") whose /dev/nvme0 is a plain file, so
/// the SMART log cannot be asked for, and a SATA SSD (sda, rotational 0).
void write_storage(const SysfsWriter& out);

/// By name, for the tree tool: laptop, malformed, throttle, temperatures, ina3221,
/// ina3221_no_input, storage, none (a mains supply and nothing else). False for an unknown name.
bool write_device_health_scenario(const SysfsWriter& out, std::string_view name);

}  // namespace wattprobe::testing
