#include "collectors/energy/ipmi.h"

#include <dlfcn.h>
#include <freeipmi/freeipmi.h>

#include <filesystem>
#include <string>
#include <type_traits>

#include "agent/base/log.h"

namespace wattprobe {
namespace {

/// libfreeipmi, opened at the first open() on a host with an IPMI device. Linked, its relocations
/// alone kept 2 MiB resident in every agent (issue 25's RSS goal), BMC or not, where most hosts
/// never read IPMI. The soname is that of the headers built against (Debian 12: 1.6.x).
constexpr const char* kFreeIpmiLibrary = "libfreeipmi.so.17";

struct FreeIpmi {
  decltype(&::ipmi_ctx_create) ctx_create;
  decltype(&::ipmi_ctx_destroy) ctx_destroy;
  decltype(&::ipmi_ctx_close) ctx_close;
  decltype(&::ipmi_ctx_open_inband) ctx_open_inband;
  decltype(&::ipmi_ctx_errnum) ctx_errnum;
  decltype(&::ipmi_ctx_errormsg) ctx_errormsg;
  decltype(&::ipmi_cmd_dcmi_get_power_reading) cmd_dcmi_get_power_reading;
  decltype(&::fiid_obj_create) obj_create;
  decltype(&::fiid_obj_get) obj_get;
  decltype(&::fiid_obj_destroy) obj_destroy;
  fiid_field_t* power_reading_rs;  // tmpl_cmd_dcmi_get_power_reading_rs
};

Result<FreeIpmi> load_freeipmi() {
  void* lib = ::dlopen(kFreeIpmiLibrary, RTLD_NOW | RTLD_LOCAL);  // kept for the process's life
  if (!lib)
    return Error{
        ErrorKind::unsupported, kFreeIpmiLibrary,
        std::string("cannot load FreeIPMI (Debian: apt install libfreeipmi17): ") + ::dlerror()};
  FreeIpmi f{};
  std::string missing;
  auto bind = [&](auto& slot, const char* name) {
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(::dlsym(lib, name));
    if (!slot) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  bind(f.ctx_create, "ipmi_ctx_create");
  bind(f.ctx_destroy, "ipmi_ctx_destroy");
  bind(f.ctx_close, "ipmi_ctx_close");
  bind(f.ctx_open_inband, "ipmi_ctx_open_inband");
  bind(f.ctx_errnum, "ipmi_ctx_errnum");
  bind(f.ctx_errormsg, "ipmi_ctx_errormsg");
  bind(f.cmd_dcmi_get_power_reading, "ipmi_cmd_dcmi_get_power_reading");
  bind(f.obj_create, "fiid_obj_create");
  bind(f.obj_get, "fiid_obj_get");
  bind(f.obj_destroy, "fiid_obj_destroy");
  bind(f.power_reading_rs, "tmpl_cmd_dcmi_get_power_reading_rs");
  if (!missing.empty()) return Error{ErrorKind::unsupported, kFreeIpmiLibrary, "lacks " + missing};
  return f;
}

/// Loaded once, on first use; the same answer after.
const Result<FreeIpmi>& freeipmi() {
  static const Result<FreeIpmi> loaded = load_freeipmi();
  return loaded;
}

class FreeIpmiDcmiReader : public DcmiReader {
 public:
  explicit FreeIpmiDcmiReader(std::filesystem::path device) : device_(std::move(device)) {}
  ~FreeIpmiDcmiReader() override {
    if (ctx_) {
      lib_->ctx_close(ctx_);
      lib_->ctx_destroy(ctx_);
    }
  }

  Result<bool> open() override {
    // Only the kernel's driver (/dev/ipmi0): probing KCS or SSIF would poke I/O ports and
    // buses on every host `auto` runs on. Opened before the privilege drop and kept.
    std::error_code ec;
    if (!std::filesystem::exists(device_, ec))
      return Error{ErrorKind::absent, device_.string(),
                   "no in-band IPMI device (a server's BMC: modprobe ipmi_si ipmi_devintf)"};
    if (!lib_) {
      const Result<FreeIpmi>& lib = freeipmi();
      if (!lib) return lib.error();
      lib_ = &*lib;
    }
    if (!ctx_) ctx_ = lib_->ctx_create();
    if (!ctx_) return Error{ErrorKind::transient, "ipmi", "ipmi_ctx_create failed"};
    if (lib_->ctx_open_inband(ctx_, IPMI_DEVICE_OPENIPMI, 0, 0, 0, device_.c_str(),
                              IPMI_WORKAROUND_FLAGS_DEFAULT, IPMI_FLAGS_DEFAULT) == 0)
      return true;
    return error("ipmi_ctx_open_inband");
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
  Error error(const char* what) {
    int e = lib_->ctx_errnum(ctx_);
    std::string detail = std::string(what) + ": " + lib_->ctx_errormsg(ctx_);
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
  std::filesystem::path device_;
};

}  // namespace

std::unique_ptr<DcmiReader> make_freeipmi_dcmi_reader(const HostPaths& paths) {
  return std::make_unique<FreeIpmiDcmiReader>(paths.dev_root / "dev/ipmi0");
}

IpmiSource::IpmiSource(std::unique_ptr<DcmiReader> reader) : reader_(std::move(reader)) {}

Availability IpmiSource::probe() {
  Availability a;
  if (!open_) {
    auto opened = reader_->open();
    if (!opened) {
      a.reason = opened.error().message();
      a.remedy = "on a server: modprobe ipmi_si ipmi_devintf and run the agent as root at start";
      return a;
    }
    open_ = true;
  }
  auto r = reader_->read();
  if (!r) {
    a.reason = r.error().message();
    return a;
  }
  if (!r->active) {
    a.reason = "the BMC says its DCMI power measurement is not active";
    return a;
  }
  a.available = true;
  a.reason = "DCMI power reading " + std::to_string(static_cast<int>(r->watts)) +
             " W (in-band; integrated power)";
  return a;
}

Sample IpmiSource::sample() {
  Sample out;
  if (!open_) return out;
  auto r = reader_->read();
  if (r && !r->active) r = Error{ErrorKind::unsupported, "ipmi", "power measurement not active"};
  if (!r) {
    out.errors.push_back(r.error());
    if (++failures_ == 3) {
      log_line("ipmi: stalled: 3 DCMI power reads failed: " + r.error().message() +
               "; the next source stands in for the platform domain");
    }
    why_ = r.error().message();
    return out;
  }
  if (failures_ >= 3) log_line("ipmi: the BMC answers again");
  failures_ = 0;
  Reading reading;
  reading.domain = "platform";
  reading.key = "ipmi:dcmi";
  reading.kind = ReadingKind::power_gauge;
  reading.watts = r->watts;
  out.readings.push_back(std::move(reading));
  return out;
}

void IpmiSource::append_families(std::vector<Family>& out) const {
  if (!open_) return;
  out.push_back({"wattprobe_ipmi_info",
                 "The BMC's DCMI power reading the ipmi source uses (integrated power), and "
                 "whether it is stalled (3 failed reads in a row) and why.",
                 MetricType::gauge,
                 {{{{"reading", "dcmi_power"},
                    {"integrated", "true"},
                    {"state", failures_ >= 3 ? "stalled" : "ok"},
                    {"reason", failures_ >= 3 ? why_ : std::string()}},
                   1.0}}});
}

std::unique_ptr<EnergySource> make_ipmi_source(const HostPaths& paths) {
  return std::make_unique<IpmiSource>(make_freeipmi_dcmi_reader(paths));
}

}  // namespace wattprobe
