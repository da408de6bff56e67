#include "collectors/energy/ipmi.h"

#include <freeipmi/freeipmi.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>

#include "agent/base/log.h"
#include "agent/base/runtime_library.h"
#include "agent/base/secret_file.h"
#include "collectors/energy/platform_energy_track.h"

namespace wattprobe {
namespace {

/// Where the BMC is: the kernel's device, or a host on the LAN with its account's files.
struct DcmiTarget {
  std::filesystem::path device;
  IpmiOptions lan;
};

/// libfreeipmi, opened at the first open() on a host with an IPMI device. Linked, its relocations
/// alone kept 2 MiB resident in every agent (issue 25's RSS goal), BMC or not, where most hosts
/// never read IPMI. The soname is that of the headers built against (Debian 12: 1.6.x).
constexpr const char* kFreeIpmiLibrary = "libfreeipmi.so.17";

struct FreeIpmi {
  decltype(&::ipmi_ctx_create) ctx_create;
  decltype(&::ipmi_ctx_destroy) ctx_destroy;
  decltype(&::ipmi_ctx_close) ctx_close;
  decltype(&::ipmi_ctx_open_inband) ctx_open_inband;
  decltype(&::ipmi_ctx_open_outofband_2_0) ctx_open_outofband_2_0;
  decltype(&::ipmi_ctx_errnum) ctx_errnum;
  decltype(&::ipmi_ctx_errormsg) ctx_errormsg;
  decltype(&::ipmi_cmd_dcmi_get_power_reading) cmd_dcmi_get_power_reading;
  decltype(&::fiid_obj_create) obj_create;
  decltype(&::fiid_obj_get) obj_get;
  decltype(&::fiid_obj_destroy) obj_destroy;
  fiid_field_t* power_reading_rs;  // tmpl_cmd_dcmi_get_power_reading_rs
};

Result<FreeIpmi> load_freeipmi() {
  std::string why;
  auto lib = RuntimeLibrary::open(kFreeIpmiLibrary, "FreeIPMI", "apt install libfreeipmi17", &why);
  if (!lib) return Error{ErrorKind::unsupported, kFreeIpmiLibrary, why};
  auto bind = [&](auto& slot, const char* name) { lib->bind(slot, name); };
  FreeIpmi f{};
  bind(f.ctx_create, "ipmi_ctx_create");
  bind(f.ctx_destroy, "ipmi_ctx_destroy");
  bind(f.ctx_close, "ipmi_ctx_close");
  bind(f.ctx_open_inband, "ipmi_ctx_open_inband");
  bind(f.ctx_open_outofband_2_0, "ipmi_ctx_open_outofband_2_0");
  bind(f.ctx_errnum, "ipmi_ctx_errnum");
  bind(f.ctx_errormsg, "ipmi_ctx_errormsg");
  bind(f.cmd_dcmi_get_power_reading, "ipmi_cmd_dcmi_get_power_reading");
  bind(f.obj_create, "fiid_obj_create");
  bind(f.obj_get, "fiid_obj_get");
  bind(f.obj_destroy, "fiid_obj_destroy");
  bind(f.power_reading_rs, "tmpl_cmd_dcmi_get_power_reading_rs");
  if (!lib->missing().empty())
    return Error{ErrorKind::unsupported, kFreeIpmiLibrary, "lacks " + lib->missing()};
  return f;
}

/// Loaded once, on first use; the same answer after.
const Result<FreeIpmi>& freeipmi() {
  static const Result<FreeIpmi> loaded = load_freeipmi();
  return loaded;
}

class FreeIpmiDcmiReader : public DcmiReader {
 public:
  explicit FreeIpmiDcmiReader(DcmiTarget target) : target_(std::move(target)) {}
  ~FreeIpmiDcmiReader() override {
    if (ctx_) {
      lib_->ctx_close(ctx_);
      lib_->ctx_destroy(ctx_);
    }
  }

  Result<bool> open() override {
    if (!target_.lan.host.empty()) {
      if (auto ok = load(); !ok) return ok.error();
      auto user = read_secret_file(target_.lan.user_file);
      if (!user) return user.error();
      auto password = read_secret_file(target_.lan.password_file);
      if (!password) return password.error();
      // FreeIPMI's defaults: a 20 s session, 1 s between retransmissions (milliseconds).
      if (lib_->ctx_open_outofband_2_0(ctx_, target_.lan.host.c_str(), user->c_str(),
                                       password->c_str(), nullptr, 0, IPMI_PRIVILEGE_LEVEL_USER, 3,
                                       20000, 1000, target_.lan.workaround_flags,
                                       IPMI_FLAGS_DEFAULT) == 0)
        return true;
      return error("IPMI 2.0 session to " + target_.lan.host);
    }
    // Only the kernel's driver (/dev/ipmi0): probing KCS or SSIF would poke I/O ports and
    // buses on every host `auto` runs on. Opened before the privilege drop and kept.
    std::error_code ec;
    if (!std::filesystem::exists(target_.device, ec))
      return Error{ErrorKind::absent, target_.device.string(),
                   "no in-band IPMI device (a server's BMC: modprobe ipmi_si ipmi_devintf)"};
    if (auto ok = load(); !ok) return ok.error();
    if (lib_->ctx_open_inband(ctx_, IPMI_DEVICE_OPENIPMI, 0, 0, 0, target_.device.c_str(),
                              IPMI_WORKAROUND_FLAGS_DEFAULT, IPMI_FLAGS_DEFAULT) == 0)
      return true;
    return error("ipmi_ctx_open_inband");
  }

  std::string where() const override {
    return target_.lan.host.empty() ? "in-band" : "over the LAN to " + target_.lan.host;
  }

  Result<DcmiPowerReading> read() override {
    if (!ctx_) return Error{ErrorKind::transient, "ipmi", "read before the device was opened"};
    fiid_obj_t rs = lib_->obj_create(lib_->power_reading_rs);
    if (!rs) return Error{ErrorKind::transient, "ipmi", "fiid_obj_create failed"};
    Result<DcmiPowerReading> out = Error{ErrorKind::transient, "ipmi", ""};
    if (lib_->cmd_dcmi_get_power_reading(ctx_, IPMI_DCMI_POWER_READING_MODE_SYSTEM_POWER_STATISTICS,
                                         0, rs) < 0) {
      out = error("DCMI Get Power Reading");
    } else {
      uint64_t watts = 0, active = 0;
      if (lib_->obj_get(rs, "current_power", &watts) < 0 ||
          lib_->obj_get(rs, "power_reading_state.power_measurement", &active) < 0) {
        out = Error{ErrorKind::malformed, "ipmi", "DCMI Get Power Reading: short answer"};
      } else {
        out = DcmiPowerReading{static_cast<double>(watts), active == 1};
      }
    }
    lib_->obj_destroy(rs);
    return out;
  }

 private:
  /// Loads the library (once per process) and makes the context, before the first open.
  Result<bool> load() {
    if (!lib_) {
      const Result<FreeIpmi>& lib = freeipmi();
      if (!lib) return lib.error();
      lib_ = &*lib;
    }
    if (!ctx_) ctx_ = lib_->ctx_create();
    if (!ctx_) return Error{ErrorKind::transient, "ipmi", "ipmi_ctx_create failed"};
    return true;
  }

  Error error(const std::string& what) {
    int e = lib_->ctx_errnum(ctx_);
    std::string detail = what + ": " + lib_->ctx_errormsg(ctx_);
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
  const FreeIpmi* lib_ = nullptr;  // set by the first open() that gets past the device check
  ipmi_ctx_t ctx_ = nullptr;
  DcmiTarget target_;
};

}  // namespace

std::unique_ptr<DcmiReader> make_freeipmi_dcmi_reader(const HostPaths& paths) {
  return std::make_unique<FreeIpmiDcmiReader>(DcmiTarget{paths.dev_root / "dev/ipmi0", {}});
}

std::unique_ptr<DcmiReader> make_freeipmi_dcmi_lan_reader(const IpmiOptions& options) {
  return std::make_unique<FreeIpmiDcmiReader>(DcmiTarget{{}, options});
}

Result<unsigned> parse_ipmi_workarounds(std::string_view names) {
  static constexpr std::pair<std::string_view, unsigned> kNames[] = {
      {"authcap", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_AUTHENTICATION_CAPABILITIES},
      {"intel20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_INTEL_2_0_SESSION},
      {"supermicro20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUPERMICRO_2_0_SESSION},
      {"sun20", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_SUN_2_0_SESSION},
      {"opensesspriv", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_OPEN_SESSION_PRIVILEGE},
      {"integritycheckvalue", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NON_EMPTY_INTEGRITY_CHECK_VALUE},
      {"nochecksumcheck", IPMI_WORKAROUND_FLAGS_OUTOFBAND_2_0_NO_CHECKSUM_CHECK}};
  unsigned flags = 0;
  while (!names.empty()) {
    const std::size_t comma = names.find(',');
    const std::string_view name = names.substr(0, comma);
    auto it = std::find_if(std::begin(kNames), std::end(kNames),
                           [&](const auto& n) { return n.first == name; });
    if (it == std::end(kNames)) {
      return Error{ErrorKind::malformed, "ipmi-workarounds",
                   "unknown workaround \"" + std::string(name) +
                       "\": expected authcap, intel20, supermicro20, sun20, opensesspriv, "
                       "integritycheckvalue or nochecksumcheck"};
    }
    flags |= it->second;
    names = comma == std::string_view::npos ? std::string_view() : names.substr(comma + 1);
  }
  return flags;
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
      if (opened.error().path.find("ipmi0") != std::string::npos)
        a.remedy = "on a server: modprobe ipmi_si ipmi_devintf and run the agent as root at start";
      return a;
    }
    open_ = true;
  }
  if (started_) {
    a.available = true;
    a.reason = "DCMI power reading (" + poller_->reader->where() + "; integrated power)";
    return a;
  }
  auto r = poller_->poll();
  if (!r) {
    a.reason = r.error().message();
    return a;
  }
  a.available = true;
  a.reason = "DCMI power reading " + std::to_string(static_cast<int>(r->watts)) + " W (" +
             poller_->reader->where() + "; integrated power; read every " +
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

std::unique_ptr<EnergySource> make_ipmi_source(const HostPaths& paths, const IpmiOptions& options) {
  return std::make_unique<IpmiSource>(options.host.empty()
                                          ? make_freeipmi_dcmi_reader(paths)
                                          : make_freeipmi_dcmi_lan_reader(options));
}

OptionTable<IpmiOptions> ipmi_option_table() {
  using I = IpmiOptions;
  return {
      {"ipmi-host", "ipmi: read the BMC over the LAN (IPMI 2.0, HOST[:PORT]) instead of /dev/ipmi0",
       [](I& i, const std::vector<OptionValue>& v) {
         const std::string& host = v.back().value;
         if (host.empty() || host.find_first_of("/@ ") != std::string::npos)
           refuse_value(v.back(), "expected HOST or HOST:PORT");
         i.host = host;
       },
       [](const I& i) { return i.host; }},
      secret_file_option("ipmi-user-file", &I::user_file,
                         "ipmi: file holding the BMC user (also $CREDENTIALS_DIRECTORY/NAME)"),
      secret_file_option("ipmi-password-file", &I::password_file,
                         "ipmi: file holding the BMC password (also $CREDENTIALS_DIRECTORY/NAME)"),
      {"ipmi-workarounds",
       "ipmi: FreeIPMI's IPMI 2.0 workarounds for a BMC that needs them, e.g. opensesspriv",
       [](I& i, const std::vector<OptionValue>& v) {
         auto flags = parse_ipmi_workarounds(v.back().value);
         if (!flags) refuse_value(v.back(), flags.error().detail);
         i.workaround_flags = *flags;
       },
       [](const I&) { return std::string(); }},
  };
}

}  // namespace wattprobe
