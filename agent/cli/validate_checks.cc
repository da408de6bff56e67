#include "agent/cli/validate_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <optional>
#include <set>

namespace wattprobe {
namespace {

constexpr const char* kNode = "wattprobe_node_energy_joules_total";
constexpr const char* kWorkload = "wattprobe_workload_energy_joules_total";
constexpr const char* kIdle = "wattprobe_node_idle_energy_joules_total";
constexpr const char* kUnattributed = "wattprobe_node_unattributed_energy_joules_total";
constexpr const char* kIdlePower = "wattprobe_node_idle_power_watts";
constexpr const char* kGpuLimit = "wattprobe_gpu_power_limit_watts";

std::string key_of(const Labels& labels) {
  std::string k;
  for (const auto& [n, v] : labels) k += n + "=" + v + ",";
  return k;
}

/// Series of a family by their labels, each with its value.
std::map<std::string, std::pair<Labels, double>> by_labels(const Snapshot& s, const char* family) {
  std::map<std::string, std::pair<Labels, double>> out;
  if (const Family* f = s.find(family)) {
    for (const auto& series : f->series) out[key_of(series.labels)] = {series.labels, series.value};
  }
  return out;
}

std::string get(const Labels& labels, const std::string& key) {
  for (const auto& [n, v] : labels)
    if (n == key) return v;
  return "";
}

/// The family's growth per domain between two ticks. A series that appears counts from 0 (a new
/// workload); one that disappears (an expired workload) counted its last joules before.
std::map<std::string, double> growth_by_domain(const Snapshot& a, const Snapshot& b,
                                               const char* family) {
  auto before = by_labels(a, family);
  std::map<std::string, double> out;
  for (const auto& [k, lv] : by_labels(b, family)) {
    auto it = before.find(k);
    out[get(lv.first, "domain")] += lv.second - (it == before.end() ? 0.0 : it->second.second);
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

/// The highest mean power over kWindow ticks of the node energy series `match` picks. Limits hold
/// over their time windows (RAPL's PL1 ~28 s, PL2 a few ms; a GPU's over about a second), not
/// over any one read: a counter updated in steps, or a read that comes late, puts two ticks'
/// joules in one. Mean power over kWindow ticks is what the hardware bounds.
double peak_mean_watts(const std::vector<ValidateTick>& ticks,
                       const std::function<bool(const Labels&)>& match) {
  constexpr size_t kWindow = 3;
  std::vector<double> joules;
  for (const auto& t : ticks) {
    double j = 0;
    if (const Family* f = t.snapshot->find(kNode)) {
      for (const auto& s : f->series) {
        if (match(s.labels.get())) j += s.value;
      }
    }
    joules.push_back(j);
  }
  double peak = 0;
  for (size_t i = kWindow; i < ticks.size(); ++i) {
    double dt = ticks[i].seconds - ticks[i - kWindow].seconds;
    if (dt > 0) peak = std::max(peak, (joules[i] - joules[i - kWindow]) / dt);
  }
  return peak;
}

std::string row_name(const std::string& source, const std::string& domain,
                     const std::string& socket) {
  return source + "_" + domain + (socket.empty() ? "" : "_" + socket);
}

}  // namespace

ValidateCheck& ValidateCheck::judge() {
  if (!value || !bound) return *this;
  pass = kind == "min" ? *value >= *bound : *value <= *bound;
  return *this;
}

std::string label_of(const Series& s, const std::string& key) { return get(s.labels, key); }

double family_sum(const Snapshot& s, const std::string& family,
                  const std::map<std::string, std::string>& want) {
  const Family* f = s.find(family);
  if (!f) return 0;
  double sum = 0;
  for (const auto& series : f->series) {
    bool match = std::all_of(want.begin(), want.end(), [&](const auto& kv) {
      return get(series.labels, kv.first) == kv.second;
    });
    if (match) sum += series.value;
  }
  return sum;
}

std::vector<ValidateCheck> conservation_checks(const std::vector<ValidateTick>& ticks) {
  double worst = 0;
  std::string worst_at;
  size_t compared = 0;
  for (size_t i = 1; i < ticks.size(); ++i) {
    const Snapshot& a = *ticks[i - 1].snapshot;
    const Snapshot& b = *ticks[i].snapshot;
    auto node = growth_by_domain(a, b, kNode);
    auto work = growth_by_domain(a, b, kWorkload);
    auto idle = growth_by_domain(a, b, kIdle);
    auto lost = growth_by_domain(a, b, kUnattributed);
    for (const auto& [domain, joules] : node) {
      if (joules <= 1e-9) continue;
      double parts = work[domain] + idle[domain] + lost[domain];
      double err = std::abs(parts - joules) / joules;
      ++compared;
      if (err > worst) {
        worst = err;
        worst_at = "tick " + std::to_string(i) + ", " + domain + ": parts " + fmt("%.6f", parts) +
                   " J, measured " + fmt("%.6f", joules) + " J";
      }
    }
  }
  std::vector<ValidateCheck> out;
  ValidateCheck c{"conservation_every_tick", worst, "ratio", 1e-6, "max", std::nullopt, ""};
  if (compared == 0) {
    c.value.reset();
    c.detail = "no tick measured any energy";
  } else {
    c.detail = "largest abs(idle + workloads + unattributed - measured) / measured over " +
               std::to_string(compared) + " tick-domains" +
               (worst_at.empty() ? "" : " (" + worst_at + ")");
  }
  out.push_back(c.judge());
  if (ticks.size() >= 2) {
    const char* v = "wattprobe_agent_conservation_violations_total";
    double n = family_sum(*ticks.back().snapshot, v) - family_sum(*ticks.front().snapshot, v);
    ValidateCheck k{"conservation_violations",
                    n,
                    "ticks",
                    0,
                    "max",
                    std::nullopt,
                    "ticks the agent itself counted as not conserving (" + std::string(v) + ")"};
    out.push_back(k.judge());
  }
  return out;
}

std::vector<ValidateCheck> counter_checks(const std::vector<ValidateTick>& ticks,
                                          std::pair<size_t, size_t> idle,
                                          std::pair<size_t, size_t> load,
                                          const std::vector<PowercapZoneFacts>& zones) {
  std::vector<ValidateCheck> out;
  if (ticks.size() < 2) return out;
  const Snapshot& last = *ticks.back().snapshot;
  auto mean_watts = [&](const std::string& key, std::pair<size_t, size_t> w) -> double {
    double dt = ticks[w.second].seconds - ticks[w.first].seconds;
    if (dt <= 0) return 0;
    auto a = by_labels(*ticks[w.first].snapshot, kNode);
    auto b = by_labels(*ticks[w.second].snapshot, kNode);
    double ja = a.count(key) ? a[key].second : 0;
    double jb = b.count(key) ? b[key].second : 0;
    return (jb - ja) / dt;
  };

  // Every counter the agent reads, by its series.
  std::set<std::string> cpu_driven = {"package", "core", "psys"};
  std::set<std::string> must_move = {"package", "core", "dram", "psys"};
  // An estimate is no counter: checking that it moves would check the model, not the host.
  std::set<std::string> estimates;
  if (const Family* f = last.find("wattprobe_energy_source_info")) {
    for (const auto& s : f->series)
      if (get(s.labels, "measured") == "false") estimates.insert(get(s.labels, "source"));
  }
  int counters = 0;
  for (const auto& [key, lv] : by_labels(last, kNode)) {
    const std::string source = get(lv.first, "source"), domain = get(lv.first, "domain"),
                      socket = get(lv.first, "socket");
    const std::string row = row_name(source, domain, socket);
    if (!must_move.count(domain) || estimates.count(source)) continue;
    ++counters;
    double load_w = mean_watts(key, load);
    ValidateCheck adv{"counter_advances_" + row,
                      load_w,
                      "W",
                      0.001,
                      "min",
                      std::nullopt,
                      "mean power while the burners ran; a counter that stands still reads 0"};
    out.push_back(adv.judge());
    if (cpu_driven.count(domain)) {
      double idle_w = mean_watts(key, idle);
      ValidateCheck flat{
          "counter_idle_below_load_" + row, std::nullopt, "ratio", 1.0, "max", std::nullopt, ""};
      if (load_w > 0) flat.value = idle_w / load_w;
      flat.detail = "mean power at idle " + fmt("%.3f", idle_w) + " W / under load " +
                    fmt("%.3f", load_w) + " W";
      out.push_back(flat.judge());
    }
  }

  if (counters == 0) {
    out.push_back({"counter_advances", std::nullopt, "W", 0.001, "min", std::nullopt,
                   estimates.empty() ? "no package, core, dram or psys counter is read"
                                     : "no energy counter: the energy here is an estimate"});
  }
  // Totals only grow, across a wrap of the register too.
  int backwards = 0;
  for (size_t i = 1; i < ticks.size(); ++i) {
    auto a = by_labels(*ticks[i - 1].snapshot, kNode);
    for (const auto& [k, lv] : by_labels(*ticks[i].snapshot, kNode)) {
      auto it = a.find(k);
      if (it != a.end() && lv.second < it->second.second) ++backwards;
    }
  }
  int wraps = 0;
  for (size_t i = 1; i < ticks.size(); ++i) {
    for (const auto& [zone, uj] : ticks[i].raw_uj) {
      auto it = ticks[i - 1].raw_uj.find(zone);
      if (it != ticks[i - 1].raw_uj.end() && uj < it->second) ++wraps;
    }
  }
  ValidateCheck mono{"counter_totals_monotonic",
                     static_cast<double>(backwards),
                     "steps",
                     0,
                     "max",
                     std::nullopt,
                     "energy totals that stepped back between ticks; " + std::to_string(wraps) +
                         " powercap register wrap(s) happened during the run"};
  out.push_back(mono.judge());

  // Plausible power: no tick above what the zone states it may draw.
  if (zones.empty()) {
    out.push_back({"counter_power_plausible", std::nullopt, "W", std::nullopt, "max", std::nullopt,
                   "no powercap zone here states a power limit (constraint_*_max_power_uw)"});
  }
  for (const auto& z : zones) {
    std::string name =
        "counter_power_plausible_" + z.domain + (z.socket.empty() ? "" : "_" + z.socket);
    if (z.ceiling_watts <= 0) {
      out.push_back({name, std::nullopt, "W", std::nullopt, "max", std::nullopt,
                     z.key + " states no constraint_*_max_power_uw or power limit"});
      continue;
    }
    bool seen = false;
    double peak = peak_mean_watts(ticks, [&](const Labels& l) {
      bool match = get(l, "domain") == z.domain && get(l, "socket") == z.socket &&
                   get(l, "source").rfind("rapl", 0) == 0;
      seen = seen || match;
      return match;
    });
    ValidateCheck c{name,
                    peak,
                    "W",
                    z.ceiling_watts,
                    "max",
                    std::nullopt,
                    "highest mean power over 3 ticks vs the largest limit " + z.key + " states"};
    if (!seen) {
      c.value.reset();
      c.detail = "no RAPL power series for " + z.key + " (stalled at start, or not read)";
    }
    out.push_back(c.judge());
  }
  // GPUs: each gpu row against the limit its driver states (wattprobe_gpu_power_limit_watts, the
  // largest over the run: an administrator may raise it while validate runs).
  std::set<std::pair<std::string, std::string>> gpus;  // (source, device)
  for (const auto& [key, lv] : by_labels(last, kNode)) {
    if (get(lv.first, "domain") == "gpu")
      gpus.insert({get(lv.first, "source"), get(lv.first, "socket")});
  }
  for (const auto& gpu : gpus) {
    // Named copies, not a structured binding: Debian 12's clang 15 (the fuzz build) refuses a
    // binding captured by the lambda below.
    const std::string& source = gpu.first;
    const std::string& device = gpu.second;
    const std::string name = "counter_power_plausible_gpu_" + source + "_" + device;
    std::optional<double> limit;
    for (const auto& t : ticks) {
      if (const Family* f = t.snapshot->find(kGpuLimit)) {
        for (const auto& s : f->series) {
          if (get(s.labels, "source") == source && get(s.labels, "device") == device)
            limit = std::max(limit.value_or(0.0), s.value);
        }
      }
    }
    if (!limit) {
      out.push_back({name, std::nullopt, "W", std::nullopt, "max", std::nullopt,
                     "GPU " + device + " of " + source +
                         " states no power limit (NVML answers NOT_SUPPORTED, or the hwmon "
                         "chip has no power1_cap): nothing to hold its power to"});
      continue;
    }
    double peak = peak_mean_watts(ticks, [&](const Labels& l) {
      return get(l, "domain") == "gpu" && get(l, "source") == source && get(l, "socket") == device;
    });
    ValidateCheck c{name,
                    peak,
                    "W",
                    *limit,
                    "max",
                    std::nullopt,
                    "highest mean power over 3 ticks vs the power limit the GPU's driver "
                    "enforces (wattprobe_gpu_power_limit_watts)"};
    out.push_back(c.judge());
  }

  // A second meter: psys or a platform meter holds at least what package + dram measured.
  std::map<std::string, double> by_domain;
  for (const auto& [key, lv] : by_labels(last, kNode)) {
    by_domain[get(lv.first, "domain")] += mean_watts(key, load);
  }
  double inner = by_domain["package"] + by_domain["dram"];
  bool any = false;
  for (const char* outer : {"psys", "platform"}) {
    if (!by_domain.count(outer) || inner <= 0) continue;
    any = true;
    ValidateCheck c{std::string("counter_second_meter_") + outer,
                    by_domain[outer] / inner,
                    "ratio",
                    0.95,
                    "min",
                    std::nullopt,
                    std::string(outer) + " " + fmt("%.3f", by_domain[outer]) +
                        " W vs package + dram " + fmt("%.3f", inner) +
                        " W under load; it covers them, so it may not read less (5 % tolerance)"};
    out.push_back(c.judge());
  }
  // What share of the wall the components cover: the rest is what only the wall sees.
  if (double wall = by_domain["platform"]; wall > 0) {
    double components = inner + by_domain["gpu"];
    ValidateCheck c{"wall_components_share",
                    components / wall,
                    "ratio",
                    1.05,
                    "max",
                    std::nullopt,
                    "package + dram + gpu " + fmt("%.3f", components) + " W cover " +
                        fmt("%.1f", 100 * components / wall) + " % of the wall's " +
                        fmt("%.3f", wall) +
                        " W under load; the rest (fans, supply loss, disks, "
                        "NICs) " +
                        fmt("%.3f", std::max(0.0, wall - components)) +
                        " W; they cannot cover more than the wall (5 % tolerance)"};
    out.push_back(c.judge());
  }
  if (!any) {
    out.push_back({"counter_second_meter", std::nullopt, "ratio", 0.95, "min", std::nullopt,
                   "no second meter: neither psys nor a platform meter beside package + dram"});
  }
  return out;
}

std::vector<ValidateCheck> idle_checks(const std::vector<ValidateTick>& ticks,
                                       const std::map<std::string, double>& truth) {
  std::vector<ValidateCheck> out;
  if (ticks.empty()) return out;
  const Family* f = ticks.back().snapshot->find(kIdlePower);
  if (!f || f->series.empty()) {
    out.push_back({"idle_power", std::nullopt, "W", std::nullopt, "max", std::nullopt,
                   "no idle power row: the agent measured no energy"});
    return out;
  }
  for (const auto& s : f->series) {
    const std::string source = get(s.labels, "source"), domain = get(s.labels, "domain"),
                      socket = get(s.labels, "socket"), method = get(s.labels, "method");
    const std::string name = "idle_power_" + row_name(source, domain, socket);
    // The estimate's spread over the second half of the run, when it has settled.
    double lo = s.value, hi = s.value;
    for (size_t i = ticks.size() / 2; i < ticks.size(); ++i) {
      const Family* g = ticks[i].snapshot->find(kIdlePower);
      if (!g) continue;
      for (const auto& t : g->series) {
        if (get(t.labels, "source") == source && get(t.labels, "domain") == domain &&
            get(t.labels, "socket") == socket) {
          lo = std::min(lo, t.value);
          hi = std::max(hi, t.value);
        }
      }
    }
    std::string est = fmt("%.3f", s.value) + " W by " + method + ", " + fmt("%.3f", lo) + " to " +
                      fmt("%.3f", hi) + " W over the second half of the run";
    if (method == "override") {
      out.push_back({name, s.value, "W", std::nullopt, "max", std::nullopt,
                     "--idle-watts sets it (" + est + "): no estimator to check"});
      continue;
    }
    if (method == "none") {
      out.push_back({name, std::nullopt, "W", std::nullopt, "max", std::nullopt,
                     "no estimate: no tick was at 10 % utilisation or less and utilisation "
                     "never varied by 5 points (the host was busy throughout)"});
      continue;
    }
    auto t = truth.find(domain);
    if (t == truth.end()) {
      out.push_back({name, s.value, "W", std::nullopt, "max", std::nullopt,
                     "no --idle-truth " + domain + "=W given: the estimate is " + est});
      continue;
    }
    ValidateCheck c{name + "_error",
                    100.0 * std::abs(s.value - t->second) / t->second,
                    "%",
                    5.0,
                    "max",
                    std::nullopt,
                    "estimate " + est + "; truth " + fmt("%.3f", t->second) + " W"};
    out.push_back(c.judge());
  }
  return out;
}

}  // namespace wattprobe
