#pragma once

#include <filesystem>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// Parses a kernel CPU list ("0-3,8", "0,24", "" for none;
/// Documentation/admin-guide/cputopology.rst) into ascending CPU numbers without duplicates. Ranges
/// must run upwards; anything else (spaces inside, signs, "3-", overlong ranges) is malformed and
/// names `path`.
Result<std::vector<int>> parse_cpu_list(std::string_view text, const std::filesystem::path& path);

/// The online CPUs from /sys/devices/system/cpu/online.
Result<std::vector<int>> read_online_cpus(const HostPaths& paths);

/// /sys/devices/system/cpu/cpuN/topology/physical_package_id: the socket of a CPU.
Result<int> read_package_of_cpu(const HostPaths& paths, int cpu);

struct PackageCpu {
  int package = 0;  // physical_package_id
  int cpu = 0;      // the lowest online CPU in that package
};

/// One CPU per physical package, lowest package first: where per-package MSRs are read.
Result<std::vector<PackageCpu>> first_cpu_per_package(const HostPaths& paths);

}  // namespace wattprobe
