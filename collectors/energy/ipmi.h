#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// One DCMI "Get Power Reading" answer (DCMI 1.5, 6.6.1), in system power statistics mode.
struct DcmiPowerReading {
  double watts = 0;     // current power
  bool active = false;  // power_reading_state.power_measurement: the BMC measures
};

/// --ipmi-*: where the `ipmi` source finds the BMC.
struct IpmiOptions {
  /// Empty: in-band, through the kernel's device. Else HOST or HOST:PORT, over the LAN (IPMI 2.0,
  /// RMCP+ cipher suite 3, User privilege) with the account in the two files.
  std::string host;
  std::string user_file, password_file;
  unsigned workaround_flags = 0;  // --ipmi-workarounds: FreeIPMI's IPMI 2.0 workarounds
};

/// --ipmi-host, --ipmi-user-file, --ipmi-password-file, --ipmi-workarounds; whether they go
/// together is checked where the options are read as a whole.
OptionTable<IpmiOptions> ipmi_option_table();

/// --ipmi-workarounds: FreeIPMI's names (as its tools' -W takes them: authcap, intel20,
/// supermicro20, sun20, opensesspriv, integritycheckvalue, nochecksumcheck), comma-separated;
/// the first unknown name as the error.
Result<unsigned> parse_ipmi_workarounds(std::string_view names);

/// The library behind a seam: FreeIPMI in-band through the kernel's IPMI device, or a fake in
/// tests. Errors: unsupported (the BMC has no DCMI power reading), transient (a timeout, a busy
/// BMC), absent (no IPMI device).
class DcmiReader {
 public:
  virtual ~DcmiReader() = default;
  virtual Result<bool> open() = 0;
  virtual Result<DcmiPowerReading> read() = 0;
  /// Where it reads, for doctor: "in-band", "over the LAN to HOST".
  virtual std::string where() const { return "in-band"; }
};

/// FreeIPMI's libfreeipmi on the kernel's IPMI device (<dev-root>/dev/ipmi0):
/// ipmi_ctx_open_inband, ipmi_cmd_dcmi_get_power_reading.
std::unique_ptr<DcmiReader> make_freeipmi_dcmi_reader(const HostPaths& paths);

/// The same DCMI calls over the LAN (IPMI 2.0, RMCP+, cipher suite 3, User privilege) to
/// options.host, the account read from its files at open().
std::unique_ptr<DcmiReader> make_freeipmi_dcmi_lan_reader(const IpmiOptions& options);

/// The BMC's power in-band over DCMI (`ipmi`, domain platform). No network, no credentials.
/// Reads run on a thread of their own every `interval`, so a BMC that hangs (FreeIPMI waits for
/// the kernel's driver up to its own timeout) never holds up a tick: a power reading holds from
/// its time until the next one (PlatformEnergyTrack, as for redfish) and sample() turns that into
/// a counter, labelled integrated on wattprobe_ipmi_info. Stalled after 3 failed polls in a row,
/// or one poll unanswered for 3 intervals: Reading::known_stalled, so the next source in priority
/// stands in; the info series and the log say why.
class IpmiSource : public EnergySource {
 public:
  explicit IpmiSource(std::unique_ptr<DcmiReader> reader,
                      std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~IpmiSource() override;
  std::string_view name() const override { return "ipmi"; }
  bool measures_cpu() const override { return true; }
  bool knows_stalls() const override { return true; }
  /// Opens the device and reads once (at start, before any tick).
  Availability probe() override;
  Sample sample() override;
  /// wattprobe_ipmi_info.
  void append_families(std::vector<Family>& out) const override;

 private:
  struct Poller;  // what the poll thread shares; it outlives the source if a read never returns
  std::shared_ptr<Poller> poller_;
  bool open_ = false;
  bool started_ = false;
};

/// In-band through <dev-root>/dev/ipmi0, or over the LAN where options.host is set.
std::unique_ptr<EnergySource> make_ipmi_source(const HostPaths& paths,
                                               const IpmiOptions& options = {});

}  // namespace wattprobe
