#include "collectors/gpu_split.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <optional>

namespace wattprobe {

GpuSplitter::GpuSplitter(double window_seconds, double shrink)
    : window_(window_seconds), shrink_(std::clamp(shrink, 0.0, 1.0)) {}

GpuSplitResult GpuSplitter::split(const GpuActivity& a, double now_s) {
  GpuSplitResult out;
  for (const GpuProcessSample& s : a.samples) window_samples_.push_back({now_s, s.pid, s.sm_util});
  while (!window_samples_.empty() && window_samples_.front().t < now_s - window_) {
    window_samples_.pop_front();
  }
  if (!a.unsplittable.empty()) {
    out.why = a.unsplittable;
    return out;
  }
  if (a.running.empty()) {
    out.why = "no process holds a compute context on this GPU";
    return out;
  }
  if (a.running.size() == 1) {
    out.method = "exclusive";
    out.shares.push_back({a.running.front(), 1.0});
    return out;
  }
  // Only processes holding a context now share the energy: a pid sampled earlier in the window
  // that has since released the GPU did its work in earlier ticks.
  std::map<uint32_t, double> sampled;
  double total = 0;
  for (const Seen& s : window_samples_) {
    if (std::find(a.running.begin(), a.running.end(), s.pid) == a.running.end()) continue;
    sampled[s.pid] += s.sm;
    total += s.sm;
  }
  const double n = static_cast<double>(a.running.size());
  if (total <= 0) {
    out.method = "even";
    out.why = "no per-process sample named any of the processes in the last " +
              std::to_string(static_cast<int>(window_)) + " s";
    for (uint32_t pid : a.running) out.shares.push_back({pid, 1.0 / n});
    return out;
  }
  out.method = "sampled";
  for (uint32_t pid : a.running) {
    double s = sampled.count(pid) ? sampled[pid] / total : 0.0;
    out.shares.push_back({pid, (1 - shrink_) * s + shrink_ / n});
  }
  return out;
}

namespace {

constexpr std::size_t kMaxProcFile = 64 * 1024;

std::optional<std::string> read_small(const std::filesystem::path& p) {
  std::ifstream in(p);
  if (!in) return std::nullopt;
  std::string s(kMaxProcFile, '\0');
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<std::size_t>(in.gcount()));
  return s;
}

// The cgroup v2 path of a process ("0::" line), or nullopt when it is gone or has none.
}  // namespace

std::optional<std::string> process_cgroup(const HostPaths& paths, uint32_t pid) {
  auto text = read_small(paths.proc(std::to_string(pid) + "/cgroup"));
  if (!text) return std::nullopt;
  std::string_view all(*text);
  while (!all.empty()) {
    auto nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
    if (line.substr(0, 3) == "0::" && line.size() > 3 && line[3] == '/')
      return std::string(line.substr(3));
  }
  return std::nullopt;
}

std::string process_comm(const HostPaths& paths, uint32_t pid) {
  auto text = read_small(paths.proc(std::to_string(pid) + "/comm"));
  if (!text) return "";
  std::string s = text->substr(0, text->find('\n')).substr(0, 64);
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return s;
}

GpuWorkloads::GpuWorkloads(HostPaths paths) : paths_(paths), resolver_(std::move(paths)) {}

GpuTick GpuWorkloads::tick(const NvmlSource& nvml, double now_s) {
  GpuTick out;
  const auto& activity = nvml.activity();
  splitters_.resize(activity.size());
  last_.resize(activity.size());
  for (std::size_t i = 0; i < activity.size(); ++i) {
    const GpuActivity& a = activity[i];
    GpuSplitResult split = splitters_[i].split(a, now_s);
    GpuDeviceTick dev;
    dev.source = std::string(nvml.name());
    dev.device = a.index;
    dev.method = split.method;
    dev.why = split.why;
    dev.utilisation = a.utilisation;
    for (const GpuPidShare& s : split.shares) {
      auto cg = process_cgroup(paths_, s.pid);
      if (!cg) {
        dev.unresolved += s.share;  // exited, or not visible from the agent's pid namespace
        continue;
      }
      dev.shares.push_back(
          {resolver_.resolve_path(*cg), s.pid, process_comm(paths_, s.pid), s.share});
    }
    if (a.readable) out.devices.push_back(std::move(dev));
    last_[i] = std::move(split);
  }
  return out;
}

void GpuWorkloads::append_families(const NvmlSource& nvml, Family& info, Family& split) const {
  const auto& devices = nvml.devices();
  for (std::size_t i = 0; i < devices.size(); ++i) {
    const GpuDeviceInfo& g = devices[i];
    info.series.push_back({{{"device", std::to_string(g.index)},
                            {"uuid", g.uuid},
                            {"name", g.name},
                            {"driver", nvml.driver_version()},
                            {"energy", g.energy_counter ? "counter" : "integrated_power"},
                            {"mig", g.mig},
                            {"accounting", g.accounting},
                            {"state", g.lost ? "lost" : "ok"}},
                           1});
    if (i < last_.size()) {
      split.series.push_back({{{"source", std::string(nvml.name())},
                               {"device", std::to_string(g.index)},
                               {"split", last_[i].method},
                               {"why", last_[i].why}},
                              1});
    }
  }
}

DrmGpuWorkloads::DrmGpuWorkloads(HostPaths paths) : paths_(paths), resolver_(std::move(paths)) {}

GpuTick DrmGpuWorkloads::tick(const HwmonSource& hwmon) {
  DrmScan scan = scan_drm_clients(paths_);
  std::map<std::string, std::vector<DrmBusySplit::Share>> by_pdev = busy_.tick(scan);
  std::map<std::string, std::size_t> clients;  // pdev → DRM files open on it
  for (const DrmClient& c : scan.clients) ++clients[c.pdev];

  GpuTick out;
  for (const HwmonSource::Sensor& s : hwmon.sensors()) {
    if (s.domain != "gpu" || out.find(hwmon.name(), s.socket)) continue;
    GpuDeviceTick dev;
    dev.source = std::string(hwmon.name());
    dev.device = s.socket;
    GpuSplitResult split;
    auto shares = by_pdev.find(s.pci_address);
    if (s.pci_address.empty()) {
      split.why = "the hwmon chip names no PCI device to match DRM clients with";
    } else if (shares != by_pdev.end()) {
      split.method = "busy_time";
      for (const DrmBusySplit::Share& p : shares->second) {
        split.shares.push_back({p.pid, p.share});
        auto cg = process_cgroup(paths_, p.pid);
        if (!cg) {
          dev.unresolved += p.share;  // exited between the scan and this read
          continue;
        }
        dev.shares.push_back(
            {resolver_.resolve_path(*cg), p.pid, process_comm(paths_, p.pid), p.share});
      }
    } else if (clients.count(s.pci_address) > 0) {
      split.why = "no process added DRM busy time in the tick";
    } else {
      split.why = "no process shows a DRM client of " + s.pci_address + " in " +
                  paths_.proc("").string() + "<pid>/fdinfo (none open, or another pid namespace)";
    }
    dev.method = split.method;
    dev.why = split.why;
    last_[dev.device] = std::move(split);
    out.devices.push_back(std::move(dev));
  }
  return out;
}

void DrmGpuWorkloads::append_split_info(Family& split) const {
  for (const auto& [device, r] : last_) {
    split.series.push_back({{{"source", "hwmon"},
                             {"device", std::to_string(device)},
                             {"split", r.method},
                             {"why", r.why}},
                            1});
  }
}

namespace {

class NvmlGpuSplit : public GpuSplitSource {
 public:
  NvmlGpuSplit(const NvmlSource& nvml, const HostPaths& paths) : nvml_(nvml), workloads_(paths) {}
  std::vector<GpuDeviceTick> tick(double now_s) override {
    return workloads_.tick(nvml_, now_s).devices;
  }
  void append_rows(Family& info, Family& split) const override {
    workloads_.append_families(nvml_, info, split);
  }
  std::vector<GpuPowerLimit> power_limits() const override { return nvml_.power_limits(); }
  int embodied_gpus() const override { return static_cast<int>(nvml_.devices().size()); }

 private:
  const NvmlSource& nvml_;  // owned by the energy meter, which outlives the pipeline's splits
  GpuWorkloads workloads_;
};

class DrmGpuSplit : public GpuSplitSource {
 public:
  DrmGpuSplit(const HwmonSource& hwmon, const HostPaths& paths)
      : hwmon_(hwmon), workloads_(paths) {}
  std::vector<GpuDeviceTick> tick(double) override { return workloads_.tick(hwmon_).devices; }
  void append_rows(Family&, Family& split) const override { workloads_.append_split_info(split); }
  std::vector<GpuPowerLimit> power_limits() const override { return hwmon_.gpu_power_limits(); }

 private:
  const HwmonSource& hwmon_;
  DrmGpuWorkloads workloads_;
};

}  // namespace

std::unique_ptr<GpuSplitSource> make_nvml_gpu_split(const NvmlSource& nvml,
                                                    const HostPaths& paths) {
  return std::make_unique<NvmlGpuSplit>(nvml, paths);
}

std::unique_ptr<GpuSplitSource> make_drm_gpu_split(const HwmonSource& hwmon,
                                                   const HostPaths& paths) {
  for (const auto& s : hwmon.sensors()) {
    if (s.domain == "gpu") return std::make_unique<DrmGpuSplit>(hwmon, paths);
  }
  return nullptr;
}

}  // namespace wattprobe
