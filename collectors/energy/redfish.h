#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "collectors/energy/platform_energy_track.h"
#include "collectors/energy/redfish_client.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// [source.redfish]: --redfish-* options.
struct RedfishOptions {
  std::string url;  // empty: the source is not available
  std::string user_file, password_file;
  std::string ca_file;
  bool insecure_skip_verify = false;
  std::string chassis;  // empty: the one chassis with power data
  std::chrono::milliseconds interval{std::chrono::seconds(10)};
  std::chrono::milliseconds timeout{std::chrono::seconds(5)};
};

/// --redfish-*; that the files come with the URL is checked where the options are read.
OptionTable<RedfishOptions> redfish_option_table();

/// How a chassis gives its power, best first (issue 26): an energy counter, the supplies' AC
/// input, the chassis' power, the deprecated PowerControl.
enum class RedfishKind { energy_counter, supply_input, chassis_power, power_control };
std::string_view to_string(RedfishKind kind);

/// Where a reading sits in a document.
enum class RedfishShape {
  metrics_field,   // doc[field].Reading (EnvironmentMetrics, PowerSupplyMetrics); summed over urls
  sensor,          // doc.Reading, doc.ReadingTime (a Sensor)
  power_supplies,  // Σ doc.PowerSupplies[].PowerInputWatts (Power)
  power_control,   // doc.PowerControl[0].PowerConsumedWatts (Power)
};

struct RedfishPlan {
  std::string chassis;  // the chassis' Id (its path's last part)
  RedfishKind kind = RedfishKind::chassis_power;
  RedfishShape shape = RedfishShape::metrics_field;
  std::string field;              // for metrics_field
  std::vector<std::string> urls;  // what one poll reads
  double unit_joules = 1;         // energy counters: J per unit of Reading
  std::string what;  // "Sensors/TotalEnergy (EnergykWh)", for doctor and the info series
};

/// Per chassis: its best reading and, beside an energy counter, the best power reading (the
/// rate that advances the counter between its steps).
struct RedfishChassis {
  std::string id;
  std::optional<RedfishPlan> best;
  std::optional<RedfishPlan> power;
};

using RedfishGet = std::function<Result<nlohmann::json>(const std::string& path)>;

/// Walks /redfish/v1 → Chassis → each chassis' EnvironmentMetrics, Sensors, PowerSubsystem and
/// Power. Every chassis is listed, with or without power data.
Result<std::vector<RedfishChassis>> discover_redfish(const RedfishGet& get);

struct RedfishValue {
  double value = 0;                   // W, or the counter in the plan's unit
  std::optional<int64_t> reading_ms;  // ReadingTime, when the BMC gives it
};
/// One poll of a plan: every number checked (finite, not negative).
Result<RedfishValue> read_redfish(const RedfishPlan& plan, const RedfishGet& get);

/// "2019-08-13T04:14:33+06:00", with an optional fraction, Z or ±HH:MM: ms since the epoch.
std::optional<int64_t> parse_redfish_time(std::string_view text);

/// The BMC's AC input through Redfish, domain platform: reads run on a thread of their own
/// every --redfish-interval, so a slow or hanging BMC never holds up a tick; sample() turns
/// the last readings into a cumulative counter (PlatformEnergyTrack). Stalled after 3 failed
/// polls in a row, or when its energy counter has not moved over 3 of its refresh intervals
/// (3 minutes before it has stepped twice): Reading::known_stalled, so the next source in
/// priority stands in.
class RedfishSource : public EnergySource {
 public:
  /// `transport` empty: libcurl to options.url.
  RedfishSource(RedfishOptions options, std::unique_ptr<RedfishTransport> transport = nullptr);
  ~RedfishSource() override;

  std::string_view name() const override { return "redfish"; }
  bool measures_cpu() const override { return true; }
  bool knows_stalls() const override { return true; }
  /// Reads the credentials and walks the service. Several chassis with power data and no
  /// --redfish-chassis: SourceUsageError (exit 2), listing them.
  Availability probe() override;
  Sample sample() override;
  /// wattprobe_redfish_info, wattprobe_redfish_power_watts, wattprobe_redfish_polls_total.
  void append_families(std::vector<Family>& out) const override;

  /// One poll, as the thread does it (tests drive it without the thread).
  void poll_once();

 private:
  void run();
  double now_s() const;
  RedfishOptions options_;
  std::unique_ptr<RedfishTransport> transport_;
  std::unique_ptr<RedfishClient> client_;
  std::optional<RedfishPlan> plan_, power_plan_;
  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();

  mutable std::mutex mu_;
  PlatformEnergyTrack track_;
  int failures_ = 0;
  std::string_view auth_ = "none";  // the client's, copied under mu_
  std::string last_error_;
  std::string stall_reason_;
  uint64_t polls_ok_ = 0, polls_failed_ = 0;

  std::atomic<bool> stop_{false};
  std::atomic<bool> abort_{false};  // what the transport checks during a transfer
  std::condition_variable wake_;
  std::thread thread_;
  bool started_ = false;
};

std::unique_ptr<EnergySource> make_redfish_source(const RedfishOptions& options);

}  // namespace wattprobe
