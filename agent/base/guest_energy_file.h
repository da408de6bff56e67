#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

/// energy.json, the file a host agent writes for each VM (--guest-energy-dir) and a guest agent's
/// `host` source reads (--host-energy-path). docs/guest-energy.md is its contract.
inline constexpr int kGuestEnergyVersion = 1;
inline constexpr std::string_view kGuestEnergySchema = "wattprobe.guest-energy";
inline constexpr std::string_view kGuestEnergyFileName = "energy.json";
/// A file larger than this is not one the host wrote.
inline constexpr std::size_t kGuestEnergyMaxBytes = 64 * 1024;
inline constexpr double kGuestEnergyMaxJoules = 1e13;

struct GuestEnergyDomain {
  std::string domain;  // package, core, uncore, dram, psys, gpu, platform
  double joules = 0;   // cumulative: this VM's share on the host since the host agent's first start
  bool measured = true;
};

struct GuestEnergyFile {
  int version = kGuestEnergyVersion;
  std::string vm;
  uint64_t sequence = 0;  // the host's tick count since it started; changes every tick
  int64_t host_time_ms = 0;
  double interval_seconds = 0;           // the host's tick length
  std::string idle_attribution;          // the host's --idle-attribution
  bool idle_included = false;            // joules include the VM's share of idle power
  std::optional<double> grid_intensity;  // g/kWh in force on the host
  double pue = 1.0;
  std::vector<GuestEnergyDomain> domains;
};

std::string to_json(const GuestEnergyFile& file);

/// Parses energy.json strictly: every field present and of its type, joules finite and ≥ 0,
/// domains named once each, the schema's name right. A version above kGuestEnergyVersion is
/// ErrorKind::unsupported (a host newer than this guest), anything else wrong ErrorKind::malformed;
/// the error's path is `where`.
Result<GuestEnergyFile> parse_guest_energy(std::string_view text, const std::string& where);

}  // namespace wattprobe
