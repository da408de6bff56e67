#include "collectors/gpu/gpu_split.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>

#include "agent/base/log.h"

namespace wattprobe {

namespace {

// A sample below this smUtil names a context, not work: the traces name idle context holders at
// 0-1 %.
constexpr unsigned kNamedSm = 3;
// A process counts as named by the samples once two of them name its work: a single sample may be
// the tail of work that ended as the device went busy with another's.
constexpr int kNamedSamples = 2;
constexpr double kBusyUtilisation = 0.05;
// The one-named pattern is suspect once the device was this much busier than the named
// process's samples explain.
constexpr double kUnexplainedSuspect = 0.10;
// Accounting's percents are whole and truncated; beyond this bound on the window's busy seconds
// the accounting split is labelled uncertain.
constexpr double kAccountingBound = 0.10;
constexpr double kAccountingMinimum = 1;    // s: the shortest window
constexpr double kAccountingHistory = 600;  // s of accounting reads kept to widen the window

bool holds(const std::vector<uint32_t>& running, uint32_t pid) {
  return std::find(running.begin(), running.end(), pid) != running.end();
}

}  // namespace

GpuSplitter::GpuSplitter(double window_seconds, double detect_seconds, double history_seconds,
                         double accounting_seconds)
    : window_(window_seconds),
      detect_(std::max(detect_seconds, window_seconds)),
      history_(history_seconds),
      accounting_window_(accounting_seconds) {}

GpuSplitResult GpuSplitter::split(const GpuActivity& a, double now_s) {
  // The samples of a read cover the time since the previous one: they name work only where the
  // device was busy at both ends (an idle process's smUtil decays for seconds after its work).
  const bool busy = a.utilisation < 0 || (a.utilisation >= kBusyUtilisation &&
                                          previous_utilisation_ >= kBusyUtilisation);
  previous_utilisation_ = a.utilisation < 0 ? 1 : a.utilisation;
  for (const GpuProcessSample& s : a.samples) {
    samples_.push_back({now_s, s.pid, s.sm_util, busy});
    latest_[s.pid] = s.sm_util;
  }
  while (!samples_.empty() && samples_.front().t < now_s - detect_) samples_.pop_front();
  if (a.utilisation >= 0) util_.push_back({now_s, 100 * a.utilisation});
  while (!util_.empty() && util_.front().t < now_s - window_) util_.pop_front();
  for (auto it = latest_.begin(); it != latest_.end();) {
    it = holds(a.running, it->first) ? std::next(it) : latest_.erase(it);
  }

  GpuSplitResult out;
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
    out.confidence = "confident";
    out.shares.push_back({a.running.front(), 1.0});
    return out;
  }
  if (auto acc = from_accounting(a, now_s)) return *acc;
  return from_samples(a, now_s);
}

std::optional<GpuSplitResult> GpuSplitter::from_accounting(const GpuActivity& a, double now_s) {
  if (a.accounting.empty()) {
    busy_.clear();
    return std::nullopt;
  }
  Busy now{now_s, {}};
  for (const GpuAccountingStat& s : a.accounting) {
    if (!holds(a.running, s.pid)) continue;
    double life = static_cast<double>(a.accounting_read_us - s.start_us) / 1e6;
    now.busy_life[s.pid] = {s.gpu_util / 100.0 * life, life};
  }
  // Every context holder needs a record: one without (started before accounting was enabled)
  // would get nothing for work it may have done.
  if (now.busy_life.size() != a.running.size()) {
    busy_.clear();
    return std::nullopt;
  }
  busy_.push_back(std::move(now));
  while (!busy_.empty() && busy_.front().t < now_s - kAccountingHistory) busy_.pop_front();
  const Busy& last = busy_.back();
  // The busy seconds each process added since a base read: the newest base at least the window
  // old whose bound holds, else the oldest kept (a young process: the window is all its life).
  // Each whole percent is truncated, so a difference of two is off by up to 1 % of the lifetime:
  // as processes age the window must grow for the same bound.
  double total = 0, bound = 1;
  std::map<uint32_t, double> delta;
  bool found = false;
  for (auto base = busy_.rbegin(); base != busy_.rend(); ++base) {
    if (base->t > now_s - kAccountingMinimum) continue;
    double sum = 0, worst_life = 0;
    std::map<uint32_t, double> d;
    bool complete = true;
    for (const auto& [pid, bl] : last.busy_life) {
      double before = 0;
      if (auto b = base->busy_life.find(pid); b != base->busy_life.end()) {
        before = b->second.first;
      } else if (bl.second > now_s - base->t + 1) {
        complete = false;  // a process older than the window that the base did not list
        break;
      }
      d[pid] = std::max(0.0, bl.first - before);
      sum += d[pid];
      worst_life = std::max(worst_life, bl.second);
    }
    if (!complete) break;
    found = true;
    total = sum;
    delta = std::move(d);
    bound = total > 0 ? 2 * 0.01 * worst_life / total : 1;
    if (base->t <= now_s - accounting_window_ && bound <= kAccountingBound) break;
  }
  if (!found) return std::nullopt;      // no read old enough yet
  if (total <= 0) return std::nullopt;  // nothing ran in the window: the samples say as much
  GpuSplitResult out;
  out.method = "accounting";
  for (const auto& [pid, d] : delta) out.shares.push_back({pid, d / total});
  if (bound <= kAccountingBound) {
    out.confidence = "confident";
  } else {
    out.why =
        "accounting mode's whole percents over each process's lifetime are too coarse for the "
        "busy time of the window (long-lived processes)";
  }
  return out;
}

GpuSplitResult GpuSplitter::from_samples(const GpuActivity& a, double now_s) {
  GpuSplitResult out;
  std::map<uint32_t, int> naming;
  for (const Seen& s : samples_) {
    if (s.busy && s.sm >= kNamedSm && holds(a.running, s.pid)) ++naming[s.pid];
  }
  std::vector<uint32_t> named;
  for (const auto& [pid, c] : naming) {
    if (c >= kNamedSamples) named.push_back(pid);
  }
  double util = -1;
  if (!util_.empty()) {
    util = 0;
    for (const Util& u : util_) util += u.percent;
    util /= static_cast<double>(util_.size());
  }
  const double n = static_cast<double>(a.running.size());

  if (named.size() == 1) {
    // One process named in every sample while others hold contexts: they are idle, or busy in
    // step with the sampling, between the samples. What its samples explain is its own; the rest
    // of the device's utilisation is theirs.
    std::vector<uint32_t> holders = a.running;
    std::sort(holders.begin(), holders.end());
    auto key = std::make_pair(named.front(), holders);
    if (!pattern_ || *pattern_ != key) {
      pattern_ = key;
      alias_.clear();
    }
    double explained = latest_.count(named.front()) ? latest_[named.front()] : 0;
    double unexplained = util > 0 ? std::max(0.0, util - explained) / util : 0;
    alias_.emplace_back(now_s, unexplained);
    // Its smUtil trails its work by seconds, so early in a busy stretch it explains little of the
    // device; but a process named in every sample is never taken as less busy than one never
    // named: it keeps at least an even share.
    unexplained = std::min(unexplained, 1 - 1 / n);
    while (!alias_.empty() && alias_.front().first < now_s - history_) alias_.pop_front();
    bool suspect = std::any_of(alias_.begin(), alias_.end(),
                               [](const auto& x) { return x.second >= kUnexplainedSuspect; });
    if (suspect) {
      out.method = "remainder";
      out.why =
          "one process is named in every per-process sample while others hold contexts, and "
          "the device was busier than its samples explain: the others may be idle or busy in "
          "step with the sampling; the unexplained utilisation went to them evenly";
    } else {
      out.method = "sampled";
      out.confidence = "confident";
      unexplained = 0;  // its samples explain the device: the others hold idle contexts
    }
    for (uint32_t pid : a.running) {
      out.shares.push_back({pid, pid == named.front() ? 1 - unexplained : unexplained / (n - 1)});
    }
    return out;
  }
  pattern_.reset();
  alias_.clear();

  std::map<uint32_t, double> part;
  std::map<uint32_t, double> named_count;
  double count = 0, sm = 0, named_total = 0;
  for (const Seen& s : samples_) {
    if (s.t < now_s - window_ || !holds(a.running, s.pid)) continue;
    part[s.pid] += s.sm;
    sm += s.sm;
    ++count;
    if (s.busy && s.sm >= kNamedSm) {
      ++named_count[s.pid];
      ++named_total;
    }
  }
  if (sm <= 0) {
    out.method = "even";
    out.why = "no per-process sample named any of the processes holding a context";
    for (uint32_t pid : a.running) out.shares.push_back({pid, 1.0 / n});
    return out;
  }
  // What the samples explain of the device's utilisation, and the rest in proportion to how
  // often each process was named: their smUtil trails the work by seconds, the naming does not.
  for (auto& [pid, v] : part) v /= count;
  double rest = util > 0 ? std::max(0.0, util - sm / count) : 0;
  if (named_total > 0) {
    for (const auto& [pid, c] : named_count) part[pid] += rest * c / named_total;
  }
  double total = 0;
  for (const auto& [pid, v] : part) total += v;
  out.method = "sampled";
  out.confidence = "confident";
  for (uint32_t pid : a.running) {
    out.shares.push_back({pid, part.count(pid) ? part[pid] / total : 0.0});
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

namespace {

// Once per change of a GPU's split, not per tick: how it is made now, the shares, and the bound.
void log_split_change(int device, const GpuSplitResult& split) {
  std::string shares;
  double top = 0;
  for (const GpuPidShare& s : split.shares) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%s%u %.0f%%", shares.empty() ? "" : ", ", s.pid, 100 * s.share);
    shares += buf;
    top = std::max(top, s.share);
  }
  std::string bound;
  if (split.method == "remainder") {
    char buf[200];
    std::snprintf(buf, sizeof buf,
                  "; bound: any process's share may be off by up to %.0f points (the named "
                  "process may have done anything from nothing to all of it)",
                  100 * top);
    bound = buf;
  } else if (split.method == "sampled") {
    bound = "; bound: within 4 points of the counted work on the recorded random-timing traces";
  } else if (split.method == "even") {
    bound = "; bound: none (an even split of unknown work)";
  }
  log_printf("nvml: GPU %d split %s (%s)%s%s%s%s%s", device, split.method.c_str(),
             split.confidence.c_str(), shares.empty() ? "" : ": ", shares.c_str(),
             split.why.empty() ? "" : "; ", split.why.c_str(), bound.c_str());
}

}  // namespace

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
    dev.confidence = split.confidence;
    dev.why = split.why;
    dev.utilisation = a.utilisation;
    if (split.method != last_[i].method || split.confidence != last_[i].confidence)
      log_split_change(a.index, split);
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
                               {"confidence", last_[i].confidence},
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
    if (split.method != "none") split.confidence = "confident";
    dev.method = split.method;
    dev.confidence = split.confidence;
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
                             {"confidence", r.confidence},
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
