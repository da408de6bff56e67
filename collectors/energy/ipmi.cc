#include "collectors/energy/ipmi.h"

#include <freeipmi/freeipmi.h>

#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "agent/base/log.h"
#include "collectors/energy/platform_energy_track.h"

namespace wattprobe {
namespace {

class FreeIpmiDcmiReader : public DcmiReader {
 public:
  explicit FreeIpmiDcmiReader(std::filesystem::path device) : device_(std::move(device)) {}
  ~FreeIpmiDcmiReader() override {
    if (ctx_) {
      ipmi_ctx_close(ctx_);
      ipmi_ctx_destroy(ctx_);
    }
  }

  Result<bool> open() override {
    if (!ctx_) ctx_ = ipmi_ctx_create();
    if (!ctx_) return Error{ErrorKind::transient, "ipmi", "ipmi_ctx_create failed"};
    // Only the kernel's driver (/dev/ipmi0): probing KCS or SSIF would poke I/O ports and
    // buses on every host `auto` runs on. Opened before the privilege drop and kept.
    std::error_code ec;
    if (!std::filesystem::exists(device_, ec))
      return Error{ErrorKind::absent, device_.string(),
                   "no in-band IPMI device (a server's BMC: modprobe ipmi_si ipmi_devintf)"};
    if (ipmi_ctx_open_inband(ctx_, IPMI_DEVICE_OPENIPMI, 0, 0, 0, device_.c_str(),
                             IPMI_WORKAROUND_FLAGS_DEFAULT, IPMI_FLAGS_DEFAULT) == 0)
      return true;
    return error("ipmi_ctx_open_inband");
  }

  Result<DcmiPowerReading> read() override {
    fiid_obj_t rs = fiid_obj_create(tmpl_cmd_dcmi_get_power_reading_rs);
    if (!rs) return Error{ErrorKind::transient, "ipmi", "fiid_obj_create failed"};
    Result<DcmiPowerReading> out = Error{ErrorKind::transient, "ipmi", ""};
    if (ipmi_cmd_dcmi_get_power_reading(ctx_, IPMI_DCMI_POWER_READING_MODE_SYSTEM_POWER_STATISTICS,
                                        0, rs) < 0) {
      out = error("DCMI Get Power Reading");
    } else {
      uint64_t watts = 0, active = 0;
      if (fiid_obj_get(rs, "current_power", &watts) < 0 ||
          fiid_obj_get(rs, "power_reading_state.power_measurement", &active) < 0) {
        out = Error{ErrorKind::malformed, "ipmi", "DCMI Get Power Reading: short answer"};
      } else {
        out = DcmiPowerReading{static_cast<double>(watts), active == 1};
      }
    }
    fiid_obj_destroy(rs);
    return out;
  }

 private:
  Error error(const char* what) {
    int e = ipmi_ctx_errnum(ctx_);
    std::string detail = std::string(what) + ": " + ipmi_ctx_errormsg(ctx_);
    switch (e) {
      case IPMI_ERR_COMMAND_INVALID_OR_UNSUPPORTED:
      case IPMI_ERR_BAD_COMPLETION_CODE:
        return Error{ErrorKind::unsupported, "ipmi", detail + " (no DCMI power reading)"};
      case IPMI_ERR_PERMISSION:
        return Error{ErrorKind::permission, "/dev/ipmi0", detail};
      default:
        return Error{ErrorKind::transient, "ipmi", detail};
    }
  }
  ipmi_ctx_t ctx_ = nullptr;
  std::filesystem::path device_;
};

}  // namespace

std::unique_ptr<DcmiReader> make_freeipmi_dcmi_reader(const HostPaths& paths) {
  return std::make_unique<FreeIpmiDcmiReader>(paths.dev_root / "dev/ipmi0");
}

struct IpmiSource::Poller {
  Poller(std::unique_ptr<DcmiReader> r, std::chrono::milliseconds i)
      : reader(std::move(r)), interval(i) {}

  double now_s() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch).count();
  }
  double interval_s() const { return static_cast<double>(interval.count()) / 1000.0; }

  /// One read; the thread's, or probe()'s before the thread starts.
  Result<DcmiPowerReading> poll() {
    {
      std::lock_guard<std::mutex> lock(mu);
      in_flight_since = now_s();
    }
    auto r = reader->read();
    if (r && !r->active) r = Error{ErrorKind::unsupported, "ipmi", "power measurement not active"};
    const double now = now_s();
    std::lock_guard<std::mutex> lock(mu);
    in_flight_since = -1;
    if (!r) {
      ++failures;
      last_error = r.error().message();
      // Counted in the tick's sample; a BMC failing for hours between two ticks is still a few.
      if (errors.size() < 16) errors.push_back(r.error());
    } else {
      failures = 0;
      track.power(r->watts, now, now);
    }
    return r;
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      wake.wait_for(lock, interval, [this] { return stop; });
      if (stop) break;
      lock.unlock();
      (void)poll();  // what it found is in the poller, for the next sample
      lock.lock();
    }
    done = true;
    wake.notify_all();
  }

  std::unique_ptr<DcmiReader> reader;
  const std::chrono::milliseconds interval;
  const std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now();

  mutable std::mutex mu;
  std::condition_variable wake;
  bool stop = false;
  bool done = false;
  PlatformEnergyTrack track;
  int failures = 0;
  double in_flight_since = -1;  // when the read under way began; -1 when none is
  std::string last_error;
  std::vector<Error> errors;  // since the last sample
  std::string stall_reason;   // as the last sample judged it
};

IpmiSource::IpmiSource(std::unique_ptr<DcmiReader> reader, std::chrono::milliseconds interval)
    : poller_(std::make_shared<Poller>(std::move(reader), interval)) {}

IpmiSource::~IpmiSource() {
  std::unique_lock<std::mutex> lock(poller_->mu);
  poller_->stop = true;
  poller_->wake.notify_all();
  // A read the BMC never answers holds the thread until the driver gives up; stopping the agent
  // does not wait for that: the thread keeps the poller alive and ends with the process.
  if (started_)
    poller_->wake.wait_for(lock, std::chrono::seconds(2), [this] { return poller_->done; });
}

Availability IpmiSource::probe() {
  Availability a;
  if (!open_) {
    auto opened = poller_->reader->open();
    if (!opened) {
      a.reason = opened.error().message();
      a.remedy = "on a server: modprobe ipmi_si ipmi_devintf and run the agent as root at start";
      return a;
    }
    open_ = true;
  }
  if (started_) {
    a.available = true;
    a.reason = "DCMI power reading (in-band; integrated power)";
    return a;
  }
  auto r = poller_->poll();
  if (!r) {
    a.reason = r.error().message();
    return a;
  }
  a.available = true;
  a.reason = "DCMI power reading " + std::to_string(static_cast<int>(r->watts)) +
             " W (in-band; integrated power; read every " +
             std::to_string(poller_->interval_s()).substr(0, 4) + " s)";
  return a;
}

Sample IpmiSource::sample() {
  Sample out;
  if (!open_) return out;
  if (!started_) {
    started_ = true;
    // The thread owns a share of the poller, so a read that never returns cannot outlive it.
    std::thread([p = poller_] { p->run(); }).detach();
  }
  Poller& p = *poller_;
  const double now = p.now_s();
  std::lock_guard<std::mutex> lock(p.mu);
  out.errors = std::move(p.errors);
  p.errors.clear();
  std::string why;
  if (p.failures >= 3) {
    why = std::to_string(p.failures) + " DCMI power reads failed in a row: " + p.last_error;
  } else if (p.in_flight_since >= 0 && now - p.in_flight_since >= 3 * p.interval_s()) {
    why = "the BMC has not answered a DCMI power read for " +
          std::to_string(static_cast<int>(now - p.in_flight_since)) + " s";
  }
  if (why.empty() != p.stall_reason.empty()) {
    log_line(why.empty()
                 ? "ipmi: the BMC answers again"
                 : "ipmi: stalled: " + why + "; the next source stands in for the platform domain");
  }
  p.stall_reason = why;
  if (!p.track.has_reading()) return out;
  Reading reading;
  reading.domain = "platform";
  reading.key = "ipmi:dcmi";
  reading.kind = ReadingKind::energy_counter;
  reading.unit_joules = 1e-3;
  reading.raw = static_cast<uint64_t>(std::llround(p.track.energy(now) * 1000.0));
  reading.known_stalled = !why.empty();
  out.readings.push_back(std::move(reading));
  return out;
}

void IpmiSource::append_families(std::vector<Family>& out) const {
  if (!open_) return;
  std::lock_guard<std::mutex> lock(poller_->mu);
  const std::string& why = poller_->stall_reason;
  out.push_back({"wattprobe_ipmi_info",
                 "The BMC's DCMI power reading the ipmi source uses (integrated power), and "
                 "whether it is stalled (3 failed reads in a row, or one unanswered for 3 "
                 "intervals) and why.",
                 MetricType::gauge,
                 {{{{"reading", "dcmi_power"},
                    {"integrated", "true"},
                    {"state", why.empty() ? "ok" : "stalled"},
                    {"reason", why}},
                   1.0}}});
}

std::unique_ptr<EnergySource> make_ipmi_source(const HostPaths& paths) {
  return std::make_unique<IpmiSource>(make_freeipmi_dcmi_reader(paths));
}

}  // namespace wattprobe
