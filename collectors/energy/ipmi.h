#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// One DCMI "Get Power Reading" answer (DCMI 1.5, 6.6.1), in system power statistics mode.
struct DcmiPowerReading {
  double watts = 0;     // current power
  bool active = false;  // power_reading_state.power_measurement: the BMC measures
};

/// The library behind a seam: FreeIPMI in-band through the kernel's IPMI device, or a fake in
/// tests. Errors: unsupported (the BMC has no DCMI power reading), transient (a timeout, a busy
/// BMC), absent (no IPMI device).
class DcmiReader {
 public:
  virtual ~DcmiReader() = default;
  virtual Result<bool> open() = 0;
  virtual Result<DcmiPowerReading> read() = 0;
};

/// FreeIPMI's libfreeipmi on the kernel's IPMI device (<dev-root>/dev/ipmi0):
/// ipmi_ctx_open_inband, ipmi_cmd_dcmi_get_power_reading.
std::unique_ptr<DcmiReader> make_freeipmi_dcmi_reader(const HostPaths& paths);

/// The BMC's power in-band over DCMI (`ipmi`, domain platform): a power reading, integrated over
/// each tick (labelled integrated on wattprobe_ipmi_info). No network, no credentials. A read
/// that fails gives no reading that tick (the next platform source stands in); after 3 in a row
/// the info series says stalled and why.
class IpmiSource : public EnergySource {
 public:
  explicit IpmiSource(std::unique_ptr<DcmiReader> reader);
  std::string_view name() const override { return "ipmi"; }
  bool measures_cpu() const override { return true; }
  Availability probe() override;
  Sample sample() override;
  /// wattprobe_ipmi_info.
  void append_families(std::vector<Family>& out) const override;

 private:
  std::unique_ptr<DcmiReader> reader_;
  bool open_ = false;
  int failures_ = 0;
  std::string why_;  // of the last failure
};

std::unique_ptr<EnergySource> make_ipmi_source(const HostPaths& paths);

}  // namespace wattprobe
