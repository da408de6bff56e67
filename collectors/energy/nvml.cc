#include "collectors/energy/nvml.h"

#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "agent/base/log.h"
#include "collectors/energy/nvml_api.h"

namespace wattprobe {

struct NvmlSource::Api {
  decltype(&nvmlInit_v2) init = nullptr;
  decltype(&nvmlShutdown) shutdown = nullptr;
  decltype(&nvmlErrorString) error_string = nullptr;
  decltype(&nvmlSystemGetDriverVersion) driver_version = nullptr;
  decltype(&nvmlDeviceGetCount_v2) count = nullptr;
  decltype(&nvmlDeviceGetHandleByIndex_v2) handle = nullptr;
  decltype(&nvmlDeviceGetUUID) uuid = nullptr;
  decltype(&nvmlDeviceGetName) name = nullptr;
  decltype(&nvmlDeviceGetTotalEnergyConsumption) energy = nullptr;
  decltype(&nvmlDeviceGetPowerUsage) power = nullptr;
  decltype(&nvmlDeviceGetEnforcedPowerLimit) power_limit = nullptr;
  decltype(&nvmlDeviceGetUtilizationRates) utilisation = nullptr;
  decltype(&nvmlDeviceGetComputeRunningProcesses_v3) running = nullptr;
  decltype(&nvmlDeviceGetProcessUtilization) samples = nullptr;
  decltype(&nvmlDeviceGetMigMode) mig = nullptr;
  decltype(&nvmlDeviceGetAccountingMode) accounting = nullptr;
  decltype(&nvmlDeviceGetAccountingStats) accounting_stats = nullptr;
};

struct NvmlSource::Device {
  nvmlDevice_t handle = nullptr;
  bool energy_counter = true;
  bool energy_checked = false;  // the first read decides counter or integrated power
  bool lost = false;
  bool mig = false;
  bool accounting = false;        // accounting mode was on at probe (never changed by us)
  uint64_t last_seen_us = 0;      // newest sample timestamp, the lastSeen of the next query
  unsigned refused_limit_mw = 0;  // the last limit answer refused and logged, to log it once
};

namespace {

// Bounds on what NVML may say, so a corrupt answer is an error rather than a figure: no GPU draws
// 10 kW, and no list of processes or samples on one GPU is longer than this.
constexpr unsigned kMaxPowerMw = 10'000'000;
constexpr unsigned kMaxEntries = 4096;

template <class F>
bool resolve(void* handle, const char* symbol, F& out) {
  out = reinterpret_cast<F>(dlsym(handle, symbol));
  return out != nullptr;
}

// NVML strings come in fixed buffers: keep them NUL-terminated and printable, for labels.
std::string clean(const char* buf, std::size_t size) {
  std::string s(buf, strnlen(buf, size));
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return s;
}

}  // namespace

NvmlSource::NvmlSource(std::filesystem::path library)
    : library_(std::move(library)), api_(std::make_unique<Api>()) {}

NvmlSource::~NvmlSource() {
  if (initialised_ && api_->shutdown) api_->shutdown();
  if (handle_) dlclose(handle_);
}

std::string NvmlSource::error_string(int code) const {
  std::string s;
  if (api_->error_string) {
    const char* text = api_->error_string(code);
    if (text) s = clean(text, 128);
  }
  if (s.empty()) s = "NVML error";
  return s + " (" + std::to_string(code) + ")";
}

Availability NvmlSource::probe() {
  Availability a;
  if (!handle_) {
    handle_ = dlopen(library_.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_) {
      const char* why = dlerror();
      a.reason = "cannot load " + library_.string() + ": " + (why ? why : "dlopen failed");
      a.remedy =
          "install the NVIDIA driver (it ships libnvidia-ml.so.1), or point --nvml-library at "
          "the library";
      return a;
    }
    Api& f = *api_;
    bool ok = resolve(handle_, "nvmlInit_v2", f.init) &&
              resolve(handle_, "nvmlShutdown", f.shutdown) &&
              resolve(handle_, "nvmlErrorString", f.error_string) &&
              resolve(handle_, "nvmlDeviceGetCount_v2", f.count) &&
              resolve(handle_, "nvmlDeviceGetHandleByIndex_v2", f.handle) &&
              resolve(handle_, "nvmlDeviceGetUUID", f.uuid) &&
              resolve(handle_, "nvmlDeviceGetName", f.name) &&
              resolve(handle_, "nvmlDeviceGetPowerUsage", f.power);
    if (!ok) {
      dlclose(handle_);
      handle_ = nullptr;
      *api_ = Api{};
      a.reason = library_.string() + " lacks the NVML v2 entry points (driver older than R418?)";
      a.remedy = "update the NVIDIA driver";
      return a;
    }
    // Optional: without them the source still measures, with less detail.
    resolve(handle_, "nvmlSystemGetDriverVersion", f.driver_version);
    resolve(handle_, "nvmlDeviceGetTotalEnergyConsumption", f.energy);
    resolve(handle_, "nvmlDeviceGetUtilizationRates", f.utilisation);
    resolve(handle_, "nvmlDeviceGetComputeRunningProcesses_v3", f.running);
    resolve(handle_, "nvmlDeviceGetProcessUtilization", f.samples);
    resolve(handle_, "nvmlDeviceGetMigMode", f.mig);
    resolve(handle_, "nvmlDeviceGetAccountingMode", f.accounting);
    resolve(handle_, "nvmlDeviceGetEnforcedPowerLimit", f.power_limit);
    resolve(handle_, "nvmlDeviceGetAccountingStats", f.accounting_stats);
  }
  if (!initialised_) {
    int r = api_->init();
    if (r != NVML_SUCCESS) {
      a.reason = library_.string() + " is present but nvmlInit_v2 failed: " + error_string(r);
      a.remedy = r == NVML_ERROR_DRIVER_NOT_LOADED
                     ? "load the NVIDIA kernel driver (modprobe nvidia; nvidia-smi must work)"
                     : (r == NVML_ERROR_NO_PERMISSION ? "let the agent open /dev/nvidia*"
                                                      : "check that nvidia-smi works");
      return a;
    }
    initialised_ = true;
    if (api_->driver_version) {
      char buf[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
      if (api_->driver_version(buf, sizeof buf) == NVML_SUCCESS) driver_ = clean(buf, sizeof buf);
    }
    unsigned count = 0;
    r = api_->count(&count);
    if (r != NVML_SUCCESS) {
      a.reason = "nvmlDeviceGetCount_v2 failed: " + error_string(r);
      return a;
    }
    count = std::min(count, 64u);  // NVML's own limit is far below; a bound on a bad answer
    for (unsigned i = 0; i < count; ++i) {
      auto d = std::make_unique<Device>();
      GpuDeviceInfo info;
      info.index = static_cast<int>(i);
      r = api_->handle(i, &d->handle);
      if (r != NVML_SUCCESS) {
        d->lost = true;
        info.lost = r == NVML_ERROR_GPU_IS_LOST;
        info.energy_status = "no handle: " + error_string(r);
      } else {
        char buf[NVML_DEVICE_UUID_V2_BUFFER_SIZE] = {};
        if (api_->uuid(d->handle, buf, sizeof buf) == NVML_SUCCESS)
          info.uuid = clean(buf, sizeof buf);
        char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
        if (api_->name(d->handle, name, sizeof name) == NVML_SUCCESS)
          info.name = clean(name, sizeof name);
        if (api_->mig) {
          unsigned current = 0, pending = 0;
          if (api_->mig(d->handle, &current, &pending) == NVML_SUCCESS) {
            d->mig = current == NVML_DEVICE_MIG_ENABLE;
            info.mig = d->mig ? "on" : "off";
          }
        }
        if (api_->accounting) {
          nvmlEnableState_t mode = NVML_FEATURE_DISABLED;
          if (api_->accounting(d->handle, &mode) == NVML_SUCCESS) {
            d->accounting = mode == NVML_FEATURE_ENABLED;
            info.accounting = d->accounting ? "on" : "off";
          }
        }
      }
      if (info.uuid.empty()) info.uuid = "index-" + std::to_string(i);
      devices_.push_back(std::move(d));
      info_.push_back(std::move(info));
    }
  }
  std::size_t usable = 0;
  std::string names;
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i]->lost) continue;
    ++usable;
    names += (names.empty() ? "" : ", ") + std::to_string(i) + ": " + info_[i].name;
  }
  if (usable == 0) {
    a.reason = devices_.empty() ? "NVML found no NVIDIA GPU" : "every NVIDIA GPU is lost";
    return a;
  }
  a.available = true;
  a.reason = std::to_string(usable) + " GPU" + (usable > 1 ? "s" : "") + " (" + names +
             "), driver " + (driver_.empty() ? "unknown" : driver_);
  return a;
}

void NvmlSource::read_device(std::size_t i, Sample& out) {
  Device& d = *devices_[i];
  GpuDeviceInfo& info = info_[i];
  GpuActivity& act = activity_[i];
  act = GpuActivity{};
  act.index = static_cast<int>(i);
  const std::string where = "nvml:" + std::to_string(i);
  if (d.lost) {
    out.errors.push_back({ErrorKind::absent, where, "GPU is lost"});
    return;
  }
  auto lost = [&](int r) {
    if (r != NVML_ERROR_GPU_IS_LOST) return false;
    d.lost = info.lost = true;
    log_printf(
        "nvml: GPU %zu (%s) fell off the bus (NVML_ERROR_GPU_IS_LOST); the "
        "other GPUs keep measuring, this one until the agent restarts after a reset",
        i, info.uuid.c_str());
    out.errors.push_back({ErrorKind::absent, where, "GPU is lost"});
    return true;
  };

  Reading reading;
  reading.domain = "gpu";
  reading.socket = static_cast<int>(i);
  // The index too: a UUID is unique per GPU, but a counter key must never be shared even when a
  // broken answer repeats one.
  reading.key = "nvml:" + std::to_string(i) + ":" + info.uuid;
  bool have_reading = false;
  if (d.energy_counter && api_->energy) {
    unsigned long long mj = 0;
    int r = api_->energy(d.handle, &mj);
    if (lost(r)) return;
    if (r == NVML_SUCCESS) {
      reading.kind = ReadingKind::energy_counter;
      reading.raw = mj;
      reading.unit_joules = 1e-3;
      reading.reset_when_lower = true;
      have_reading = true;
      info.energy_status = "readable";
    } else if (r == NVML_ERROR_NOT_SUPPORTED && !d.energy_checked) {
      d.energy_counter = false;  // pre-Volta: integrate power from now on
    } else {
      out.errors.push_back(
          {r == NVML_ERROR_NOT_SUPPORTED ? ErrorKind::unsupported : ErrorKind::transient, where,
           "nvmlDeviceGetTotalEnergyConsumption: " + error_string(r)});
      info.energy_status = error_string(r);
    }
  } else if (!api_->energy) {
    d.energy_counter = false;
  }
  d.energy_checked = true;
  info.energy_counter = d.energy_counter;
  if (!d.energy_counter) {
    unsigned mw = 0;
    int r = api_->power(d.handle, &mw);
    if (lost(r)) return;
    if (r != NVML_SUCCESS) {
      out.errors.push_back(
          {ErrorKind::transient, where, "nvmlDeviceGetPowerUsage: " + error_string(r)});
      info.energy_status = "power: " + error_string(r);
    } else if (mw > kMaxPowerMw) {
      out.errors.push_back(
          {ErrorKind::malformed, where, "power " + std::to_string(mw) + " mW is out of range"});
    } else {
      reading.kind = ReadingKind::power_gauge;
      reading.watts = mw / 1000.0;
      have_reading = true;
      info.energy_status = "integrated power (no energy counter on this GPU)";
    }
  }
  if (have_reading) out.readings.push_back(reading);
  act.readable = have_reading;
  read_power_limit(i);

  if (api_->utilisation) {
    nvmlUtilization_t u{};
    int r = api_->utilisation(d.handle, &u);
    if (lost(r)) return;
    if (r == NVML_SUCCESS && u.gpu <= 100) {
      act.utilisation = u.gpu / 100.0;
    } else if (r == NVML_SUCCESS) {
      out.errors.push_back({ErrorKind::malformed, where,
                            "utilisation " + std::to_string(u.gpu) + " % is out of range"});
    }
  }

  if (d.mig) {
    act.unsplittable =
        "MIG mode is on: NVML has no per-process utilisation for MIG devices, so the GPU's "
        "energy cannot be split by process";
    return;
  }
  if (!api_->running || !api_->samples) {
    act.unsplittable = "the NVML library lacks the per-process queries (driver older than R510)";
    return;
  }
  // Running processes: ask for the size first, then read; a list that grew in between is read
  // again once.
  std::vector<nvmlProcessInfo_t> procs;
  for (int attempt = 0; attempt < 2; ++attempt) {
    unsigned n = static_cast<unsigned>(procs.size());
    int r = api_->running(d.handle, &n, procs.empty() ? nullptr : procs.data());
    if (lost(r)) return;
    if (r == NVML_SUCCESS) {
      procs.resize(std::min<std::size_t>(n, procs.size()));
      break;
    }
    if (r != NVML_ERROR_INSUFFICIENT_SIZE || n > kMaxEntries) {
      act.unsplittable = "nvmlDeviceGetComputeRunningProcesses_v3: " + error_string(r);
      out.errors.push_back({ErrorKind::transient, where, act.unsplittable});
      return;
    }
    procs.assign(n + 8, nvmlProcessInfo_t{});
  }
  for (const auto& p : procs) {
    if (p.pid != 0 && std::find(act.running.begin(), act.running.end(), p.pid) == act.running.end())
      act.running.push_back(p.pid);
  }

  std::vector<nvmlProcessUtilizationSample_t> samples;
  for (int attempt = 0; attempt < 2; ++attempt) {
    unsigned n = static_cast<unsigned>(samples.size());
    int r = api_->samples(d.handle, samples.empty() ? nullptr : samples.data(), &n, d.last_seen_us);
    if (lost(r)) return;
    if (r == NVML_SUCCESS) {
      samples.resize(std::min<std::size_t>(n, samples.size()));
      info.samples_status = "readable";
      break;
    }
    if (r == NVML_ERROR_NOT_FOUND) {  // no sample newer than last_seen: nothing ran
      samples.clear();
      if (info.samples_status.empty()) info.samples_status = "none yet";
      break;
    }
    if (r != NVML_ERROR_INSUFFICIENT_SIZE || n > kMaxEntries) {
      info.samples_status = error_string(r);
      act.unsplittable =
          "per-process utilisation (nvmlDeviceGetProcessUtilization) is not "
          "readable: " +
          error_string(r);
      if (r != NVML_ERROR_NOT_SUPPORTED)
        out.errors.push_back({ErrorKind::transient, where, act.unsplittable});
      return;
    }
    samples.assign(n + 8, nvmlProcessUtilizationSample_t{});
  }
  for (const auto& s : samples) {
    if (s.pid == 0 || s.smUtil > 100) {
      out.errors.push_back(
          {ErrorKind::malformed, where,
           "process sample pid " + std::to_string(s.pid) + " smUtil " + std::to_string(s.smUtil)});
      continue;
    }
    if (s.timeStamp <= d.last_seen_us) continue;  // NVML said newer; do not trust it twice
    act.samples.push_back({s.pid, s.timeStamp, s.smUtil});
  }
  for (const auto& s : act.samples) d.last_seen_us = std::max(d.last_seen_us, s.timestamp_us);

  if (d.accounting && api_->accounting_stats) read_accounting(d, act, out, where);
}

void NvmlSource::read_accounting(Device& d, GpuActivity& act, Sample& out,
                                 const std::string& where) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  act.accounting_read_us =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000u + static_cast<uint64_t>(now.tv_nsec) / 1000u;
  for (uint32_t pid : act.running) {
    nvmlAccountingStats_t st{};
    int r = api_->accounting_stats(d.handle, pid, &st);
    // NOT_FOUND: the driver keeps no record of this pid (it started before accounting was
    // enabled, or the record was recycled); the split then falls back to the samples.
    if (r != NVML_SUCCESS) continue;
    if (st.gpuUtilization > 100 || st.startTime == 0 || st.startTime > act.accounting_read_us) {
      out.errors.push_back({ErrorKind::malformed, where,
                            "accounting stats of pid " + std::to_string(pid) + ": gpuUtilization " +
                                std::to_string(st.gpuUtilization) + " startTime " +
                                std::to_string(st.startTime)});
      continue;
    }
    act.accounting.push_back({pid, st.gpuUtilization, st.startTime});
  }
}

void NvmlSource::read_power_limit(std::size_t i) {
  Device& d = *devices_[i];
  GpuDeviceInfo& info = info_[i];
  if (!api_->power_limit) {
    info.power_limit_status = "the NVML library lacks nvmlDeviceGetEnforcedPowerLimit";
    return;
  }
  unsigned mw = 0;
  int r = api_->power_limit(d.handle, &mw);
  if (r == NVML_ERROR_NOT_SUPPORTED) {
    info.power_limit_watts.reset();
    info.power_limit_status = "the GPU states no power limit (NOT_SUPPORTED)";
    return;
  }
  if (r != NVML_SUCCESS) {  // transient: the last good limit stays
    if (!info.power_limit_watts)
      info.power_limit_status = "nvmlDeviceGetEnforcedPowerLimit: " + error_string(r);
    return;
  }
  auto watts = checked_gpu_power_limit(mw / 1000.0, "nvml:" + std::to_string(i));
  if (!watts) {
    // A corrupt answer is no limit; the last good one stays, and the refusal is logged once.
    if (mw != d.refused_limit_mw) {
      d.refused_limit_mw = mw;
      log_printf("nvml: GPU %zu (%s): refused enforced power limit %u mW: out of range (0, %d] W",
                 i, info.uuid.c_str(), mw, static_cast<int>(kMaxGpuPowerLimitWatts));
    }
    if (!info.power_limit_watts)
      info.power_limit_status = "refused: " + std::to_string(mw) + " mW is out of range";
    return;
  }
  d.refused_limit_mw = 0;
  info.power_limit_watts = *watts;
  info.power_limit_status = "enforced";
}

std::vector<GpuPowerLimit> NvmlSource::power_limits() const {
  std::vector<GpuPowerLimit> out;
  for (const GpuDeviceInfo& g : info_) {
    out.push_back(
        {"nvml", g.index, g.power_limit_watts, g.power_limit_watts ? "" : g.power_limit_status});
  }
  return out;
}

Sample NvmlSource::sample() {
  Sample out;
  activity_.resize(devices_.size());
  for (std::size_t i = 0; i < devices_.size(); ++i) read_device(i, out);
  return out;
}

DoctorSection NvmlSource::doctor_section() {
  return {"GPUs (nvml, " + library_.string() + ")", doctor_report()};
}

std::vector<std::string> NvmlSource::doctor_report() {
  std::vector<std::string> lines;
  if (!initialised_) return lines;
  Sample s = sample();
  lines.push_back("driver " + (driver_.empty() ? std::string("unknown") : driver_));
  for (std::size_t i = 0; i < info_.size(); ++i) {
    const GpuDeviceInfo& g = info_[i];
    const GpuActivity& a = activity_[i];
    lines.push_back("GPU " + std::to_string(i) + ": " + g.name + " " + g.uuid +
                    (g.lost ? " LOST (NVML_ERROR_GPU_IS_LOST)" : ""));
    lines.push_back("  MIG " + g.mig + ", accounting mode " + g.accounting +
                    " (read only: wattprobe never changes a GPU setting)");
    lines.push_back("  energy: " + (g.energy_status.empty() ? "unknown" : g.energy_status));
    if (g.power_limit_watts) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f W", *g.power_limit_watts);
      lines.push_back("  power limit: " + std::string(buf) + " (enforced)");
    } else {
      lines.push_back("  power limit: none stated - " +
                      (g.power_limit_status.empty() ? "not read" : g.power_limit_status));
    }
    std::string split = a.unsplittable.empty()
                            ? "per-process samples " +
                                  (g.samples_status.empty() ? "unknown" : g.samples_status) + ", " +
                                  std::to_string(a.running.size()) + " process(es) with a context"
                            : "per-process split: not possible - " + a.unsplittable +
                                  "; the GPU's workload energy goes to unattributed";
    lines.push_back("  " + split);
    if (a.unsplittable.empty() && g.accounting == "on") {
      lines.push_back("  accounting stats: " + std::to_string(a.accounting.size()) + " of " +
                      std::to_string(a.running.size()) +
                      " process(es) (the split uses them where every context holder has one)");
    } else if (a.unsplittable.empty() && g.accounting == "off") {
      lines.push_back(
          "  accounting mode off: the split rests on NVML's samples, and work in step with them "
          "is labelled confidence=\"uncertain\" (turning it on, nvidia-smi -am 1, is the "
          "administrator's call)");
    }
    if (g.mig == "on")
      lines.push_back(
          "  fix: none from wattprobe; disabling MIG (nvidia-smi -mig 0) is the "
          "administrator's call");
  }
  return lines;
}

std::unique_ptr<EnergySource> make_nvml_source(const std::filesystem::path& library) {
  return std::make_unique<NvmlSource>(library);
}

}  // namespace wattprobe
