#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"

namespace wattprobe {

/// The fields of the NVMe SMART / Health Information log page (log identifier 02h, 512 bytes;
/// NVM Express Base Specification, "SMART / Health Information") that say how worn a drive is.
struct NvmeHealth {
  uint8_t critical_warning = 0;  // byte 0
  uint8_t available_spare = 0;   // byte 3, percent
  /// Byte 5: the vendor's estimate of the drive's life used, in percent; may exceed 100 and
  /// saturates at 255.
  uint8_t percentage_used = 0;
  /// Bytes 128..143, a 128-bit count of hours; saturated to 64 bits.
  uint64_t power_on_hours = 0;
};

/// Parses a 512-byte log page; anything shorter is malformed (named by `where`).
Result<NvmeHealth> parse_nvme_health_log(std::span<const uint8_t> page, const std::string& where);

struct DriveWear {
  std::string device;  // nvme0, sda
  std::string model;   // /sys/class/nvme/<dev>/model, trimmed; empty when unreadable
  std::optional<NvmeHealth> nvme;
  /// Why no wear figure: the ioctl was refused, the drive is SATA, ...
  std::optional<Error> problem;
};

struct StorageWear {
  std::vector<DriveWear> drives;
  std::string none_reason;
};

/// NVMe controllers under <sysfs-root>/sys/class/nvme, each read through
/// <dev-root>/dev/<controller> with the admin Get Log Page command (NVME_IOCTL_ADMIN_CMD). The
/// kernel lets only CAP_SYS_ADMIN send it (nvme_cmd_allowed), so the agent reads it once, at
/// start, before it drops its privileges; keeping the file open would not help, the check is on
/// each command. Non-rotational SATA/SAS disks (/sys/block/sd*) are listed with the reason no
/// wear is read for them: the kernel exposes no SMART attribute in sysfs, and ATA pass-through
/// (SG_IO) is not sent.
StorageWear read_storage_wear(const HostPaths& paths);

}  // namespace wattprobe
