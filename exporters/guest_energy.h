#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent/base/guest_energy_file.h"
#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "agent/base/sink.h"
#include "agent/base/snapshot.h"

namespace wattprobe {

struct GuestEnergyOptions {
  std::filesystem::path dir;  // --guest-energy-dir; off while empty
  /// --idle-attribution as given: with anything but "separate" a workload's joules include its
  /// share of idle, and so do the VM's.
  std::string idle_attribution = "separate";
  double pue = 1.0;
  double interval_seconds = 1.0;
};

/// --guest-energy-dir; the rest follows the attribution and carbon options.
OptionTable<GuestEnergyOptions> guest_energy_option_table();

/// Each VM's file from one snapshot: every vm workload's cumulative joules per domain (summed
/// over the host's sources of that domain), measured where every source in use for the domain
/// measures. Keyed by the VM's folder name (vm_folder_name); a VM whose name cannot be a folder
/// is left out.
std::map<std::string, GuestEnergyFile> guest_energy_files(const Snapshot& snapshot,
                                                          const GuestEnergyOptions& options,
                                                          uint64_t sequence);

/// --guest-energy-dir: keeps DIR/<vm>/energy.json up to date every tick, for every VM workload
/// (docs/guest-energy.md). Each file is written to a fresh temporary in the VM's folder
/// (O_CREAT|O_EXCL|O_NOFOLLOW after unlinking whatever had its name), fsynced and renamed over
/// energy.json, all relative to a descriptor of the folder opened with O_NOFOLLOW|O_DIRECTORY:
/// nothing a guest plants in a writable share (a symlink, a hard link, a fifo) is followed or
/// written through. A folder holds its VM's numbers only. Not thread-safe: the sampling thread
/// calls write().
class GuestEnergyWriter : public SnapshotSink {
 public:
  explicit GuestEnergyWriter(GuestEnergyOptions options);
  ~GuestEnergyWriter();
  GuestEnergyWriter(const GuestEnergyWriter&) = delete;
  GuestEnergyWriter& operator=(const GuestEnergyWriter&) = delete;

  /// Opens DIR (which may be a symlink: it is the administrator's), creating it (mode 0755) when
  /// missing. Start-up, after the privilege drop, so the folder belongs to the user that writes it.
  Result<bool> open();
  /// Writes every VM's file of this snapshot. Returns lines for the log: a VM's failure once,
  /// until it writes again.
  std::vector<std::string> write(const Snapshot& snapshot);
  /// wattprobe_guest_energy_vms, wattprobe_agent_guest_energy_errors_total.
  void append_families(std::vector<Family>& out) const override;

  // As a sink of the running agent: open() at start, write() each snapshot into its log.
  Result<bool> start(const SinkContext& context) override;
  void on_snapshot(const SnapshotPtr& snapshot) override;

 private:
  std::function<void(const std::string&)> log_;
  Result<bool> write_one(const std::string& folder, const std::string& text);

  GuestEnergyOptions options_;
  int dir_fd_ = -1;
  uint64_t sequence_ = 0;
  std::size_t vms_ = 0;
  std::map<std::string, uint64_t> errors_;      // reason → count
  std::map<std::string, std::string> failing_;  // folder → what was logged
};

}  // namespace wattprobe
