#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/base/host_paths.h"

namespace wattprobe {

/// One open DRM file of a process, as the kernel's DRM usage stats show it in
/// /proc/<pid>/fdinfo/<fd> (Documentation/gpu/drm-usage-stats.rst).
struct DrmClient {
  uint32_t pid = 0;
  std::string driver;  // drm-driver: amdgpu, i915, xe, ...
  std::string pdev;    // drm-pdev: the PCI address, as hwmon's `device` link names it
  /// drm-client-id, unique per open file: a file shared by several processes (fork, fd passing)
  /// shows in each, and counting it once per process would count its busy time several times.
  uint64_t client_id = 0;
  bool has_client_id = false;
  /// Busy time summed over engines: drm-engine-<name> in ns (amdgpu, i915), or drm-cycles-<name>
  /// where the driver counts cycles instead (xe). Only ever compared with the same client's
  /// earlier value and with other clients of the same device, which count alike.
  uint64_t busy = 0;
  bool cycles = false;
};

struct DrmScan {
  std::vector<DrmClient> clients;  // by pid, then fd
  uint64_t processes = 0;          // processes whose fd folder could be listed
};

/// Every DRM client of every process under the procfs root. Only descriptors that link to
/// /dev/dri/ are read, so a tick costs a readlink per open file rather than a read. Processes
/// that exit mid-scan, and files it cannot read, are skipped: the scan is a best effort.
DrmScan scan_drm_clients(const HostPaths& paths);

/// Parses one fdinfo text; false when it is not a DRM client (no drm-driver line).
bool parse_drm_fdinfo(std::string_view text, DrmClient& out);

/// Per device (pdev), each process's share of the busy time the device's clients added since
/// the previous tick. A client is counted once, under the lowest pid that holds it; a client
/// seen for the first time adds nothing (its earlier busy time is not this tick's), and one
/// whose counter went back (a driver reload) restarts from its new value.
class DrmBusySplit {
 public:
  struct Share {
    uint32_t pid = 0;
    double share = 0;  // 0..1; the shares of a device with busy time sum to 1
  };
  /// pdev → shares; a device whose clients added no busy time has none.
  std::map<std::string, std::vector<Share>> tick(const DrmScan& scan);

 private:
  /// (pdev, client id or, without one, pid << 32 | position) → busy at the last tick.
  std::map<std::pair<std::string, uint64_t>, uint64_t> last_;
};

}  // namespace wattprobe
