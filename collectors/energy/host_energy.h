#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/guest_energy_file.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// `host`: a VM's energy as its host's agent measured it (docs/guest-energy.md). The host writes
/// DIR/<vm>/energy.json every tick (--guest-energy-dir); the guest mounts that folder and names it
/// with --host-energy-path. Each domain in the file is one cumulative counter here (µJ, never
/// wrapping), measured="true" where the host measured it.
///
/// It says itself when it is stalled (knows_stalls): when the file is gone, or its sequence has
/// not changed for 3 of the host's ticks (at least 3 s), every reading is known_stalled and the
/// meter takes the domain from the stand-in (`model`) until the counter moves again. Joules below
/// the last ones (a host restarted without its checkpoint) are a reset: the tick counts nothing.
/// A malformed file (counted as reason "malformed") or one of a newer version ("unsupported")
/// keeps the last good figures, which then go stale.
///
/// A guest often boots before its host has written the VM's file: an absent file at start is
/// "waiting", not a refusal. The source starts, says so (log, wattprobe_host_energy_state), and
/// counts the energy from the first good file on (that file is the baseline, as any counter's
/// first reading is).
class HostEnergySource : public EnergySource {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit HostEnergySource(std::filesystem::path path, Clock clock = {});

  std::string_view name() const override { return "host"; }
  bool measures_cpu() const override { return true; }
  bool knows_stalls() const override { return true; }
  Availability probe() override;
  Sample sample() override;
  /// wattprobe_host_energy_state{state}: waiting (no good file read yet), ok, or stale.
  void append_families(std::vector<Family>& out) const override;

  /// The file --host-energy-path names: PATH/energy.json for a folder, else PATH.
  std::filesystem::path file() const;
  /// What doctor says about the path: what is there, what it holds, what to do.
  std::vector<std::string> doctor_report() const;
  /// "VM passthrough (--host-energy-path P)" with doctor_report()'s lines; none without a path.
  DoctorSection doctor_section() override;
  /// Whether the last sample found the host's figures stale (or none).
  bool stale() const { return stale_; }

 private:
  Result<GuestEnergyFile> read() const;

  std::filesystem::path path_;
  Clock clock_;
  std::optional<GuestEnergyFile> last_;  // the last good file
  std::optional<std::chrono::steady_clock::time_point> last_change_;
  bool stale_ = true;
  std::string last_problem_;  // logged once until it changes
};

std::unique_ptr<EnergySource> make_host_energy_source(const std::filesystem::path& path);

}  // namespace wattprobe
