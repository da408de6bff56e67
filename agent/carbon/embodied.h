#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// What the device is made of, as sysfs and procfs show it.
struct DeviceInventory {
  std::string vendor;   // /sys/class/dmi/id/sys_vendor
  std::string product;  // /sys/class/dmi/id/product_name
  std::string cpu_model;
  int sockets = 0;  // distinct "physical id" in /proc/cpuinfo (1 when the VM hides them)
  uint64_t memory_bytes = 0;
  std::vector<std::string> ssds;  // block device names, /sys/block/<dev>/queue/rotational = 0
  std::vector<std::string> hdds;  // rotational = 1
  std::vector<std::string> gpus;  // PCI addresses with class 0x03xxxx
  /// GPUs the GPU energy sources list (NVML today), handed in by the wiring (carbon does not read
  /// collectors). When set, it is the count embodied carbon uses: the PCI display class also
  /// counts a BMC's or a VM's emulated VGA, which is no GPU, so an H200 VM's one GPU would count
  /// twice.
  std::optional<int> listed_gpus;
  /// What could not be read; the inventory is still usable (the missing part counts as none).
  std::vector<Error> problems;
};

DeviceInventory read_inventory(const HostPaths& paths);

/// The GPUs embodied carbon counts: NVML's count where NVML listed any, else the PCI display
/// controllers. `from` says which ("listed by the GPU sources" or "pci display class").
std::size_t counted_gpus(const DeviceInventory& inv, std::string_view* from = nullptr);

/// Default embodied kgCO2e per component: Cloud Carbon Footprint's server model (CCF
/// EmbodiedEmissions.md and ccf-coefficients constants.py, from Dell's PowerEdge R740 LCA).
/// Every figure can be overridden.
struct EmbodiedTable {
  double base_kg = 1000;                          // mono-socket server, 1 CPU, ≤16 GB, no storage
  double memory_kg_per_gb_over_16 = 533.0 / 384;  // ≈1.39 kg/GB, R740 LCA
  double extra_cpu_kg = 100;
  double hdd_kg = 50;
  double ssd_kg = 100;
  double gpu_kg = 150;
};

struct EmbodiedBreakdown {
  std::vector<std::pair<std::string, double>> grams_by_component;  // base, memory, cpu, ...
  double total_grams = 0;
};

/// `total_kg_override` (--embodied-kg) replaces the model with one "declared" component.
EmbodiedBreakdown embodied_from_inventory(const DeviceInventory& inv, const EmbodiedTable& table,
                                          std::optional<double> total_kg_override);

/// Linear amortization over the expected lifetime.
struct Longevity {
  std::optional<double> age_seconds;  // unknown without an install date
  double lifetime_seconds = 0;
  std::optional<double> amortized_ratio;  // min(age / lifetime, 1)
  double grams_per_second = 0;            // while inside the lifetime
};

Longevity longevity(double total_grams, std::optional<int64_t> install_ms, double lifetime_years,
                    int64_t now_ms);

/// Embodied grams amortized over the wall-clock interval (from_ms, to_ms]: the part of the
/// interval inside [install, install + lifetime] times the rate. With no install date the device
/// is taken as inside its lifetime (CCF's default), so the rate always applies.
double amortized_grams(double total_grams, std::optional<int64_t> install_ms, double lifetime_years,
                       int64_t from_ms, int64_t to_ms);

/// YYYY-MM-DD as midnight UTC, in ms since the epoch.
std::optional<int64_t> parse_install_date(std::string_view text);

inline constexpr double kSecondsPerYear = 365.25 * 86400;

}  // namespace wattprobe
