#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/snapshot.h"
#include "collectors/health/battery.h"
#include "collectors/health/storage_wear.h"
#include "collectors/health/thermal.h"

namespace wattprobe {

/// How a device's health is holding up, for hardware lifecycle teams (README "Device
/// lifecycle"): batteries, thermal stress, storage wear and time powered on. Each signal is
/// exported where readable and otherwise explained by doctor_report(); nothing here is energy
/// the agent attributes.
///
/// Made in the privileged half of start-up: the NVMe SMART logs are read in the constructor,
/// while the agent still holds CAP_SYS_ADMIN (collectors/health/storage_wear.h), and kept for the
/// agent's life. Batteries are read every tick (their discharge power is integrated), the
/// temperatures and throttle counters at most every `slow_every` seconds. Runs on the sampling
/// thread; not thread-safe.
class DeviceHealth {
 public:
  /// `install_ms`: --install-date, for the powered-on share.
  DeviceHealth(HostPaths paths, std::optional<int64_t> install_ms, double slow_every = 10);

  /// Reads what is due. `log` gets each new problem once (a malformed value, a battery that
  /// lost its design capacity), never every tick.
  void tick(double seconds, int64_t now_ms, const std::function<void(const std::string&)>& log);
  void append_families(std::vector<Family>& out) const;

  /// What doctor prints under "Device health": what was found and why something is unreadable.
  std::string doctor_report(int64_t now_ms);

 private:
  void read_slow();
  void note(const Error& e, const std::function<void(const std::string&)>& log);

  HostPaths paths_;
  std::optional<int64_t> install_ms_;
  double slow_every_;
  double since_slow_ = 0;
  bool first_ = true;
  StorageWear storage_;
  BatteryScan batteries_;
  /// Last good figures per battery: a read that fails later keeps them (the daemon keeps the
  /// last good value of an outside input).
  std::map<std::string, double> capacity_ratio_;
  std::map<std::string, uint64_t> cycles_;
  std::map<std::string, double> discharge_watts_;
  std::map<std::string, double> discharged_joules_;
  ThrottleCounts throttle_;
  Temperatures temperatures_;
  std::optional<double> uptime_seconds_;
  std::optional<double> age_seconds_;
  std::set<std::string> noted_;
};

}  // namespace wattprobe
