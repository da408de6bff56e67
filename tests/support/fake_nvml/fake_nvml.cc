// A fake libnvidia-ml.so.1 for tests: the NVML functions collectors/energy/nvml.cc calls, with the
// real C signatures and return codes (collectors/energy/nvml_api.h), answering from recorded
// `nvml-trace/1` files (tests/data/nvml/README.md) instead of a GPU.
//
// Environment (read once, at nvmlInit_v2):
//   WATTPROBE_FAKE_NVML_TRACE   trace files, comma-separated, one per device in index order.
//                               Unset or empty: no device (nvmlDeviceGetCount_v2 gives 0).
//   WATTPROBE_FAKE_NVML_START   seconds into the traces where the replay begins (default 0).
//   WATTPROBE_FAKE_NVML_PIDS    RECORDED=LIVE,... maps recorded pids to live ones, in `running`
//                               and in the samples; unmapped pids are answered as recorded.
//   WATTPROBE_FAKE_NVML_LOG     file that gets one line "energy <index> <mJ> <elapsed_s>" per
//                               successful nvmlDeviceGetTotalEnergyConsumption answer, so a test
//                               can compare the agent's joules with exactly what it was told.
//   WATTPROBE_FAKE_NVML_FAULTS  comma-separated fault injections:
//       nodriver                  nvmlInit_v2 → NVML_ERROR_DRIVER_NOT_LOADED
//       lost:I@S                  device I answers NVML_ERROR_GPU_IS_LOST from S s after init
//       energy:not_supported[:I]  the energy counter is NOT_SUPPORTED (all devices, or device I)
//       reset:I@S                 device I's counter restarts from 0 at S s (a driver reload)
//       samples:not_supported[:I] nvmlDeviceGetProcessUtilization → NOT_SUPPORTED
//       mig:I                     device I is in MIG mode: GetMigMode current 1, per-process
//                                 utilisation NOT_SUPPORTED, as real MIG devices answer
//       accounting:I              GetAccountingMode says ENABLED for device I (read only), and
//                                 nvmlDeviceGetAccountingStats answers for its running pids
//                                 (below)
//       garbage:I                 device I answers absurd values (util 250 %, power and power
//                                 limit 2^32-1 mW)
// nvmlDeviceGetEnforcedPowerLimit answers the trace header's device.power_limit_mw, and
// NVML_ERROR_NOT_SUPPORTED for a trace whose header has none (as GPUs without power management).
// nvmlDeviceGetAccountingStats (accounting mode on) is synthetic, since the traces were recorded
// with it off: each recorded worker started at t = 0 of the trace, and its busy time so far is
// its `matmuls` count (the truth the trace carries) times the kernel's duration, chosen so that
// the workers' busy seconds add up to the device's (Σ util_gpu × the records' spacing). The
// answer is what the driver gives: gpuUtilization = busy ÷ lifetime as a whole percent,
// truncated; startTime in µs of the wall clock. A pid the trace's workers do not name, or a
// trace without `matmuls`, answers NVML_ERROR_NOT_FOUND.
// Replay runs in real time from nvmlInit_v2: a call at elapsed time e answers the last record
// with t <= START + e, and holds the last record after the end of the trace.

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/energy/nvml_api.h"

namespace {

struct Sample {
  unsigned pid;
  unsigned long long ts;
  unsigned sm, mem;
};

struct Record {
  double t = 0;
  std::vector<std::pair<unsigned, double>> busy_s;  // live pid → busy seconds so far (synthetic)
  unsigned long long energy_mj = 0;
  unsigned power_mw = 0;
  unsigned util_gpu = 0;
  std::vector<unsigned> running;
  std::vector<Sample> samples;
};

struct Device {
  std::string uuid, name;
  std::vector<Record> records;
  long long power_limit_mw = -1;  // -1: the header states none
  double lost_at = -1;
  double reset_at = -1;
  bool energy_unsupported = false;
  bool samples_unsupported = false;
  bool mig = false;
  bool accounting = false;
  bool garbage = false;
  unsigned long long start_us = 0;  // wall clock of the trace's t = 0, for accounting
};

std::mutex mu;
bool initialised = false;
std::vector<Device> devices;
std::string driver = "0.0";
double start_offset = 0;
double t0 = 0;
std::string log_path;

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double elapsed() { return now_s() - t0; }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, sep)) {
    if (!part.empty()) out.push_back(part);
  }
  return out;
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool load() {
  devices.clear();
  start_offset = std::atof(env("WATTPROBE_FAKE_NVML_START"));
  log_path = env("WATTPROBE_FAKE_NVML_LOG");
  std::vector<std::pair<unsigned, unsigned>> pid_map;
  for (const std::string& m : split(env("WATTPROBE_FAKE_NVML_PIDS"), ',')) {
    auto eq = m.find('=');
    if (eq == std::string::npos) return false;
    pid_map.emplace_back(std::stoul(m.substr(0, eq)), std::stoul(m.substr(eq + 1)));
  }
  auto live = [&](unsigned pid) {
    for (auto [rec, l] : pid_map) {
      if (rec == pid) return l;
    }
    return pid;
  };
  for (const std::string& file : split(env("WATTPROBE_FAKE_NVML_TRACE"), ',')) {
    std::ifstream in(file);
    if (!in) return false;
    Device d;
    std::string line;
    bool header = true;
    std::vector<std::pair<std::string, unsigned>> workers;  // label → live pid
    std::vector<std::vector<double>> counts;                // per record, per worker
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line);
      if (header) {
        d.uuid = j["device"]["uuid"].get<std::string>();
        d.name = j["device"]["name"].get<std::string>();
        driver = j["device"]["driver"].get<std::string>();
        if (j["device"].contains("power_limit_mw"))
          d.power_limit_mw = j["device"]["power_limit_mw"].get<unsigned>();
        if (j.contains("workers")) {
          for (auto& [pid, label] : j["workers"].items())
            workers.emplace_back(label.get<std::string>(), live(std::stoul(pid)));
        }
        header = false;
        continue;
      }
      Record r;
      r.t = j["t"].get<double>();
      r.energy_mj = j["energy_mj"].get<unsigned long long>();
      r.power_mw = j["power_mw"].get<unsigned>();
      r.util_gpu = j["util_gpu"].get<unsigned>();
      for (auto& p : j["running"]) r.running.push_back(live(p.get<unsigned>()));
      for (auto& s : j["samples"]) {
        r.samples.push_back({live(s[0].get<unsigned>()), s[1].get<unsigned long long>(),
                             s[2].get<unsigned>(), s[3].get<unsigned>()});
      }
      std::vector<double> c;
      if (j.contains("matmuls")) {
        for (auto& [label, pid] : workers) c.push_back(j["matmuls"].value(label, 0.0));
      }
      counts.push_back(std::move(c));
      d.records.push_back(std::move(r));
    }
    if (d.records.empty()) return false;
    // Synthetic accounting: the kernel's duration that makes the counted work the device's
    // busy time.
    double busy = 0, work = 0;
    for (std::size_t i = 1; i < d.records.size(); ++i)
      busy += d.records[i].util_gpu / 100.0 * (d.records[i].t - d.records[i - 1].t);
    if (!counts.back().empty()) {
      for (double c : counts.back()) work += c;
    }
    if (work > 0) {
      for (std::size_t i = 0; i < d.records.size(); ++i) {
        for (std::size_t w = 0; w < workers.size() && w < counts[i].size(); ++w)
          d.records[i].busy_s.emplace_back(workers[w].second, counts[i][w] * busy / work);
      }
    }
    devices.push_back(std::move(d));
  }
  auto device_of = [](const std::string& s) -> Device* {
    unsigned i = static_cast<unsigned>(std::stoul(s));
    return i < devices.size() ? &devices[i] : nullptr;
  };
  for (const std::string& f : split(env("WATTPROBE_FAKE_NVML_FAULTS"), ',')) {
    auto colon = f.find(':');
    std::string kind = f.substr(0, colon);
    std::string arg = colon == std::string::npos ? "" : f.substr(colon + 1);
    auto at = arg.find('@');
    std::string index = arg.substr(0, at);
    double when = at == std::string::npos ? 0 : std::atof(arg.c_str() + at + 1);
    if (kind == "nodriver") continue;
    if (kind == "energy" || kind == "samples") {
      auto parts = split(arg, ':');
      for (std::size_t i = 0; i < devices.size(); ++i) {
        if (parts.size() > 1 && std::stoul(parts[1]) != i) continue;
        (kind == "energy" ? devices[i].energy_unsupported : devices[i].samples_unsupported) = true;
      }
      continue;
    }
    Device* d = index.empty() ? nullptr : device_of(index);
    if (!d) return false;
    if (kind == "lost") d->lost_at = when;
    if (kind == "reset") d->reset_at = when;
    if (kind == "mig") d->mig = true;
    if (kind == "accounting") d->accounting = true;
    if (kind == "garbage") d->garbage = true;
  }
  return true;
}

Device* find(nvmlDevice_t h) {
  for (Device& d : devices) {
    if (reinterpret_cast<nvmlDevice_t>(&d) == h) return &d;
  }
  return nullptr;
}

std::size_t record_index(const Device& d, double e) {
  double t = start_offset + e;
  auto it = std::upper_bound(d.records.begin(), d.records.end(), t,
                             [](double v, const Record& r) { return v < r.t; });
  return it == d.records.begin() ? 0 : static_cast<std::size_t>(it - d.records.begin()) - 1;
}

// Common checks of a device call: initialised, a known handle, not fallen off the bus.
nvmlReturn_t check(nvmlDevice_t h, Device** out) {
  if (!initialised) return NVML_ERROR_UNINITIALIZED;
  Device* d = find(h);
  if (!d) return NVML_ERROR_INVALID_ARGUMENT;
  if (d->lost_at >= 0 && elapsed() >= d->lost_at) return NVML_ERROR_GPU_IS_LOST;
  *out = d;
  return NVML_SUCCESS;
}

nvmlReturn_t copy_string(const std::string& s, char* buf, unsigned length) {
  if (!buf) return NVML_ERROR_INVALID_ARGUMENT;
  if (s.size() + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return NVML_SUCCESS;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) nvmlReturn_t nvmlInit_v2(void) {
  std::lock_guard lock(mu);
  for (const std::string& f : split(env("WATTPROBE_FAKE_NVML_FAULTS"), ',')) {
    if (f == "nodriver") return NVML_ERROR_DRIVER_NOT_LOADED;
  }
  if (initialised) return NVML_SUCCESS;
  try {
    if (!load()) return NVML_ERROR_UNKNOWN;
  } catch (const std::exception&) {
    return NVML_ERROR_UNKNOWN;
  }
  t0 = now_s();
  timespec wall{};
  clock_gettime(CLOCK_REALTIME, &wall);
  unsigned long long wall_us = static_cast<unsigned long long>(wall.tv_sec) * 1000000ULL +
                               static_cast<unsigned long long>(wall.tv_nsec) / 1000ULL;
  for (Device& d : devices)
    d.start_us = wall_us - static_cast<unsigned long long>(start_offset * 1e6);
  initialised = true;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlShutdown(void) {
  std::lock_guard lock(mu);
  if (!initialised) return NVML_ERROR_UNINITIALIZED;
  initialised = false;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) const char* nvmlErrorString(nvmlReturn_t r) {
  switch (r) {
    case NVML_SUCCESS:
      return "Success";
    case NVML_ERROR_UNINITIALIZED:
      return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT:
      return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED:
      return "Not Supported";
    case NVML_ERROR_NOT_FOUND:
      return "Not Found";
    case NVML_ERROR_INSUFFICIENT_SIZE:
      return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED:
      return "Driver Not Loaded";
    case NVML_ERROR_GPU_IS_LOST:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlSystemGetDriverVersion(char* version,
                                                                               unsigned length) {
  std::lock_guard lock(mu);
  if (!initialised) return NVML_ERROR_UNINITIALIZED;
  return copy_string(driver, version, length);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetCount_v2(unsigned* count) {
  std::lock_guard lock(mu);
  if (!initialised) return NVML_ERROR_UNINITIALIZED;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  *count = static_cast<unsigned>(devices.size());
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(
    unsigned index, nvmlDevice_t* device) {
  std::lock_guard lock(mu);
  if (!initialised) return NVML_ERROR_UNINITIALIZED;
  if (!device || index >= devices.size()) return NVML_ERROR_INVALID_ARGUMENT;
  Device& d = devices[index];
  if (d.lost_at >= 0 && elapsed() >= d.lost_at) return NVML_ERROR_GPU_IS_LOST;
  *device = reinterpret_cast<nvmlDevice_t>(&d);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char* uuid,
                                                                      unsigned length) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  return copy_string(d->uuid, uuid, length);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char* name,
                                                                      unsigned length) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  return copy_string(d->name, name, length);
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(
    nvmlDevice_t h, unsigned long long* energy) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!energy) return NVML_ERROR_INVALID_ARGUMENT;
  if (d->energy_unsupported) return NVML_ERROR_NOT_SUPPORTED;
  double e = elapsed();
  unsigned long long v = d->records[record_index(*d, e)].energy_mj;
  if (d->reset_at >= 0 && e >= d->reset_at) {
    // The reloaded driver counts from zero: what was used since the reload.
    v -= std::min(v, d->records[record_index(*d, d->reset_at)].energy_mj);
  }
  *energy = v;
  if (!log_path.empty()) {
    if (FILE* f = std::fopen(log_path.c_str(), "a")) {
      std::fprintf(f, "energy %zu %llu %.3f\n", static_cast<std::size_t>(d - devices.data()), v, e);
      std::fclose(f);
    }
  }
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t h,
                                                                            unsigned* power) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!power) return NVML_ERROR_INVALID_ARGUMENT;
  *power = d->garbage ? 0xFFFFFFFFu : d->records[record_index(*d, elapsed())].power_mw;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(
    nvmlDevice_t h, unsigned* limit) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!limit) return NVML_ERROR_INVALID_ARGUMENT;
  if (d->garbage) {
    *limit = 0xFFFFFFFFu;
    return NVML_SUCCESS;
  }
  if (d->power_limit_mw < 0) return NVML_ERROR_NOT_SUPPORTED;
  *limit = static_cast<unsigned>(d->power_limit_mw);
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetUtilizationRates(
    nvmlDevice_t h, nvmlUtilization_t* u) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!u) return NVML_ERROR_INVALID_ARGUMENT;
  u->gpu = d->garbage ? 250 : d->records[record_index(*d, elapsed())].util_gpu;
  u->memory = 0;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(
    nvmlDevice_t h, unsigned* count, nvmlProcessInfo_t* infos) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  const Record& rec = d->records[record_index(*d, elapsed())];
  unsigned n = static_cast<unsigned>(rec.running.size());
  if (*count < n || (n > 0 && !infos)) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  for (unsigned i = 0; i < n; ++i) {
    infos[i] = nvmlProcessInfo_t{rec.running[i], 1ULL << 30, d->mig ? 1u : 0xFFFFFFFFu,
                                 d->mig ? 0u : 0xFFFFFFFFu};
  }
  *count = n;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetProcessUtilization(
    nvmlDevice_t h, nvmlProcessUtilizationSample_t* out, unsigned* count,
    unsigned long long last_seen) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!count) return NVML_ERROR_INVALID_ARGUMENT;
  if (d->samples_unsupported || d->mig) return NVML_ERROR_NOT_SUPPORTED;
  // The driver keeps a short buffer of samples: those of the replayed stretch so far that are
  // newer than last_seen.
  std::size_t now = record_index(*d, elapsed());
  std::size_t first = record_index(*d, 0);
  std::vector<nvmlProcessUtilizationSample_t> found;
  for (std::size_t i = first; i <= now; ++i) {
    for (const Sample& s : d->records[i].samples) {
      if (s.ts > last_seen) found.push_back({s.pid, s.ts, s.sm, s.mem, 0, 0});
    }
  }
  unsigned n = static_cast<unsigned>(found.size());
  if (n == 0) {
    *count = 0;
    return NVML_ERROR_NOT_FOUND;
  }
  if (!out || *count < n) {
    *count = n;
    return NVML_ERROR_INSUFFICIENT_SIZE;
  }
  std::copy(found.begin(), found.end(), out);
  *count = n;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t h,
                                                                         unsigned* current,
                                                                         unsigned* pending) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!current || !pending) return NVML_ERROR_INVALID_ARGUMENT;
  *current = *pending = d->mig ? NVML_DEVICE_MIG_ENABLE : NVML_DEVICE_MIG_DISABLE;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetAccountingMode(
    nvmlDevice_t h, nvmlEnableState_t* mode) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!mode) return NVML_ERROR_INVALID_ARGUMENT;
  *mode = d->accounting ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
  return NVML_SUCCESS;
}

__attribute__((visibility("default"))) nvmlReturn_t nvmlDeviceGetAccountingStats(
    nvmlDevice_t h, unsigned pid, nvmlAccountingStats_t* stats) {
  std::lock_guard lock(mu);
  Device* d = nullptr;
  if (nvmlReturn_t r = check(h, &d)) return r;
  if (!stats) return NVML_ERROR_INVALID_ARGUMENT;
  if (!d->accounting) return NVML_ERROR_NOT_SUPPORTED;
  double e = elapsed();
  const Record& rec = d->records[record_index(*d, e)];
  for (auto [p, busy] : rec.busy_s) {
    if (p != pid) continue;
    double life = start_offset + e;
    *stats = nvmlAccountingStats_t{};
    stats->gpuUtilization =
        life > 0 ? static_cast<unsigned>(std::min(100.0, 100.0 * busy / life)) : 0;
    stats->startTime = d->start_us;
    stats->isRunning = 1;
    return NVML_SUCCESS;
  }
  return NVML_ERROR_NOT_FOUND;
}

}  // extern "C"
