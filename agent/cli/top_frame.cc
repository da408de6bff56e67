#include "agent/cli/top_frame.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "agent/tick/attribution.h"

namespace wattprobe {
namespace {

constexpr std::string_view kNodePower = "wattprobe_node_power_watts";
constexpr std::string_view kSourceInfo = "wattprobe_energy_source_info";
constexpr std::string_view kIdlePower = "wattprobe_node_idle_power_watts";
constexpr std::string_view kWorkloadPower = "wattprobe_workload_power_watts";
constexpr std::string_view kHostPower = "wattprobe_node_host_power_watts";
constexpr std::string_view kWorkloadHostPower = "wattprobe_workload_host_power_watts";
constexpr std::string_view kWorkloadCpu = "wattprobe_workload_cpu_seconds_total";
constexpr std::string_view kWorkloadCo2e = "wattprobe_workload_operational_co2e_grams_total";
constexpr std::string_view kGridIntensity = "wattprobe_grid_carbon_intensity_grams_per_kwh";
constexpr std::string_view kAccountingMode = "wattprobe_agent_accounting_mode";
constexpr std::string_view kTickDuration = "wattprobe_agent_tick_duration_seconds";

// Fixed columns after the name; the name takes what is left of the width.
constexpr int kKindWidth = 9;
constexpr int kWattsWidth = 8;
constexpr int kGpuWidth = 8;
constexpr int kCo2eWidth = 9;
constexpr int kCpuWidth = 6;
constexpr int kSrcWidth = 4;
constexpr int kFixedWidth = kKindWidth + kWattsWidth + kCo2eWidth + kCpuWidth + kSrcWidth + 5;
constexpr int kMinNameWidth = 8;
const std::string kGpuDomain = "gpu";
constexpr std::size_t kMaxDomainLines = 4;
constexpr std::size_t kMaxStatusLines = 3;

std::map<std::string, double> by_workload(const Snapshot& s, std::string_view family) {
  std::map<std::string, double> out;
  if (const Family* f = s.find(family)) {
    for (const Series& series : f->series) out[workload_key(series.labels)] += series.value;
  }
  return out;
}

/// A counter's rate between two snapshots; empty without a previous value or across a reset.
std::optional<double> rate(const std::map<std::string, double>& before, const std::string& key,
                           double now, double seconds) {
  if (seconds <= 0) return std::nullopt;
  auto it = before.find(key);
  if (it == before.end() || now < it->second || !std::isfinite(now - it->second)) {
    return std::nullopt;
  }
  return (now - it->second) / seconds;
}

/// Label text from outside goes to a terminal: anything but printable ASCII could move the
/// cursor or change the screen, and would break the column arithmetic.
std::string printable(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

std::string fit(std::string_view text, int width) {
  if (width <= 0) return {};
  std::string s = printable(text);
  if (static_cast<int>(s.size()) <= width) return s;
  s.resize(static_cast<std::size_t>(width - 1));
  return s + "~";
}

std::string pad_right(std::string s, int width) {
  s = fit(s, width);
  s.append(static_cast<std::size_t>(width) - s.size(), ' ');
  return s;
}

std::string pad_left(std::string s, int width) {
  s = fit(s, width);
  return std::string(static_cast<std::size_t>(width) - s.size(), ' ') + s;
}

/// A figure in at most `width` columns: two decimals while they fit, then fewer, then k/M.
std::string number(double v, int decimals, int width) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
  char buf[64];
  for (int d = decimals; d >= 0; --d) {
    std::snprintf(buf, sizeof buf, "%.*f", d, v);
    if (static_cast<int>(std::string_view(buf).size()) <= width) return buf;
  }
  for (auto [scale, suffix] : {std::pair{1e3, "k"}, std::pair{1e6, "M"}, std::pair{1e9, "G"}}) {
    std::snprintf(buf, sizeof buf, "%.0f%s", v / scale, suffix);
    if (static_cast<int>(std::string_view(buf).size()) <= width) return buf;
  }
  return std::string(static_cast<std::size_t>(width), '#');
}

std::string watts_text(double w) { return number(w, 2, 10) + " W"; }

std::string clock_text(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  tm local{};
  localtime_r(&secs, &local);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &local);
  return buf;
}

/// Words laid out over lines of `width`, `gap` between them, continuation lines indented.
std::vector<std::string> wrap(const std::string& head, const std::vector<std::string>& words,
                              int width, std::string_view gap, std::string_view indent) {
  std::vector<std::string> lines{head};
  for (const std::string& w : words) {
    std::string& line = lines.back();
    if (line.size() > indent.size() &&
        static_cast<int>(line.size() + gap.size() + w.size()) > width) {
      lines.push_back(std::string(indent) + w);
    } else {
      line += (line.empty() ? "" : std::string(gap)) + w;
    }
  }
  return lines;
}

struct Style {
  bool on;
  std::string operator()(std::string_view sgr, const std::string& text) const {
    if (!on || text.empty()) return text;
    return "\x1b[" + std::string(sgr) + "m" + text + "\x1b[0m";
  }
};

}  // namespace

std::string_view to_string(TopSort sort) {
  switch (sort) {
    case TopSort::watts:
      return "watts";
    case TopSort::cpu:
      return "cpu";
    case TopSort::co2e:
      return "co2e";
    case TopSort::name:
      return "name";
  }
  return "watts";
}

std::optional<TopSort> parse_top_sort(std::string_view text) {
  for (TopSort s : {TopSort::watts, TopSort::cpu, TopSort::co2e, TopSort::name}) {
    if (text == to_string(s)) return s;
  }
  return std::nullopt;
}

std::optional<TopSort> top_sort_for_key(char key) {
  switch (key) {
    case 'w':
      return TopSort::watts;
    case 'c':
      return TopSort::cpu;
    case 'g':
      return TopSort::co2e;
    case 'n':
      return TopSort::name;
    default:
      return std::nullopt;
  }
}

std::optional<uint64_t> snapshot_tick_count(const Snapshot& snapshot) {
  const Family* f = snapshot.find(kTickDuration);
  if (f == nullptr || !f->histogram) return std::nullopt;
  return f->histogram->count;
}

TopFrame empty_top_frame(const TopFrameInput& input, std::string status) {
  TopFrame frame;
  frame.origin = input.origin;
  frame.sort = input.sort;
  frame.status = std::move(status);
  return frame;
}

TopFrame build_top_frame(const Snapshot* previous, const Snapshot& current,
                         const TopFrameInput& input) {
  TopFrame frame = empty_top_frame(input, {});
  frame.has_data = true;
  frame.timestamp_ms = current.timestamp_ms;
  if (previous != nullptr && current.timestamp_ms > previous->timestamp_ms) {
    frame.seconds = static_cast<double>(current.timestamp_ms - previous->timestamp_ms) / 1000.0;
  }

  // Provenance as wattprobe_energy_source_info states it; a source it does not list is not
  // claimed as measured.
  std::map<std::pair<std::string, std::string>, bool> measured;
  if (const Family* f = current.find(kSourceInfo)) {
    for (const Series& s : f->series) {
      measured[{label_value(s.labels, "source"), label_value(s.labels, "domain")}] =
          label_value(s.labels, "measured") != "false";
    }
  }
  auto is_measured = [&](const std::string& source, const std::string& domain) {
    auto it = measured.find({source, domain});
    return it != measured.end() && it->second;
  };

  if (const Family* f = current.find(kNodePower)) {
    for (const Series& s : f->series) {
      const std::string& source = label_value(s.labels, "source");
      const std::string& domain = label_value(s.labels, "domain");
      auto it = std::find_if(frame.domains.begin(), frame.domains.end(), [&](const TopDomain& d) {
        return d.source == source && d.domain == domain;
      });
      if (it == frame.domains.end()) {
        frame.domains.push_back({source, domain, 0, is_measured(source, domain), false});
        it = frame.domains.end() - 1;
      }
      it->watts += s.value;
    }
  }
  // The host total adds the domains that do not overlap, by the rule carbon accounting uses.
  NodeEnergy rows;
  for (const TopDomain& d : frame.domains) rows.domains.push_back({d.source, d.domain});
  std::vector<bool> in_sum = host_sum_domains(rows);
  std::set<std::string> sum_domains;
  for (std::size_t i = 0; i < frame.domains.size(); ++i) {
    TopDomain& d = frame.domains[i];
    d.in_host_sum = in_sum[i];
    frame.has_gpu = frame.has_gpu || d.domain == kGpuDomain;
    if (!d.in_host_sum) continue;
    frame.host_watts += d.watts;
    frame.host_measured = frame.host_measured && d.measured;
    if (sum_domains.insert(d.domain).second) frame.host_domains.push_back(d.domain);
  }
  // The agent's own E_host replaces the sum (only an agent older than the family lacks it): it
  // holds what a sum of node series cannot, such as the components where the wall read below
  // them.
  const Family* host_power = current.find(kHostPower);
  if (host_power != nullptr && !host_power->series.empty()) {
    const Series& h = host_power->series.front();
    frame.host_watts = h.value;
    frame.host_measured = label_value(h.labels, "measured") != "false";
  }
  // Sources in the order the agent lists them, so the screen keeps its shape between frames.
  std::map<std::string, std::size_t> source_order;
  for (const TopDomain& d : frame.domains) source_order.emplace(d.source, source_order.size());
  // Within a source, the domains the total adds come first.
  std::stable_sort(frame.domains.begin(), frame.domains.end(),
                   [&](const TopDomain& a, const TopDomain& b) {
                     return std::pair(source_order[a.source], !a.in_host_sum) <
                            std::pair(source_order[b.source], !b.in_host_sum);
                   });

  if (const Family* f = current.find(kIdlePower)) {
    for (const Series& s : f->series) {
      // Before the estimator has seen a low-utilisation tick, idle is unknown, not zero. The
      // wall's own idle is that of the rest beyond the components: the host's idle holds theirs.
      const std::string& domain = label_value(s.labels, "domain");
      const bool in_wall = sum_domains.count("platform") &&
                           (domain == "package" || domain == "dram" || domain == kGpuDomain);
      if ((!sum_domains.count(domain) && !in_wall) || label_value(s.labels, "method") == "none") {
        continue;
      }
      frame.idle_watts = frame.idle_watts.value_or(0) + s.value;
    }
  }
  if (const Family* f = current.find(kGridIntensity); f && !f->series.empty()) {
    frame.grid_grams_per_kwh = f->series.front().value;
  }
  if (const Family* f = current.find(kAccountingMode); f && !f->series.empty()) {
    frame.accounting_mode = label_value(f->series.front().labels, "mode");
  }

  std::map<std::string, TopWorkload> workloads;
  auto entry = [&](const Labels& labels) -> TopWorkload& {
    TopWorkload& w = workloads[workload_key(labels)];
    if (w.name.empty() && w.kind.empty()) {
      w.name = label_value(labels, "workload");
      w.kind = label_value(labels, "kind");
      w.measured = frame.host_measured;
    }
    return w;
  };
  const Family* workload_host = current.find(kWorkloadHostPower);
  if (const Family* f = current.find(kWorkloadPower)) {
    std::set<std::string> seen;
    for (const Series& s : f->series) {
      const std::string& domain = label_value(s.labels, "domain");
      // A GPU's watts are the workload's own wherever the host total stands (a psys total may
      // hold an integrated GPU, but the workload still used it), so they are read before the
      // overlap rule below. Only workloads that used a GPU have gpu series (attribution).
      if (domain == kGpuDomain) {
        TopWorkload& w = entry(s.labels);
        w.gpu_watts = w.gpu_watts.value_or(0) + s.value;
      }
      // Overlapping domains (core inside package) would count a joule twice; the agent's
      // per-workload E_host, where it has one, is read below instead.
      if (!sum_domains.count(domain) || workload_host != nullptr) continue;
      TopWorkload& w = entry(s.labels);
      // The workload's own provenance replaces the host's at its first summed series.
      if (seen.insert(workload_key(s.labels)).second) w.measured = true;
      w.watts += s.value;
      w.measured = w.measured && label_value(s.labels, "measured") != "false" &&
                   is_measured(label_value(s.labels, "source"), domain);
    }
  }
  if (workload_host != nullptr) {
    for (const Series& s : workload_host->series) {
      TopWorkload& w = entry(s.labels);
      w.watts = s.value;
      w.measured = frame.host_measured;
    }
  }
  const double seconds = frame.seconds;
  auto cpu_now = by_workload(current, kWorkloadCpu);
  auto co2e_now = by_workload(current, kWorkloadCo2e);
  std::map<std::string, double> cpu_before, co2e_before;
  if (previous != nullptr) {
    cpu_before = by_workload(*previous, kWorkloadCpu);
    co2e_before = by_workload(*previous, kWorkloadCo2e);
  }
  const double capacity = std::max(1u, input.cpus);
  for (const Family* f : {current.find(kWorkloadCpu), current.find(kWorkloadCo2e)}) {
    if (f == nullptr) continue;
    for (const Series& s : f->series) entry(s.labels);
  }
  for (auto& [key, w] : workloads) {
    if (auto it = cpu_now.find(key); it != cpu_now.end()) {
      if (auto r = rate(cpu_before, key, it->second, seconds)) w.cpu_share = *r / capacity;
    }
    if (auto it = co2e_now.find(key); it != co2e_now.end()) {
      if (auto r = rate(co2e_before, key, it->second, seconds)) w.co2e_grams_per_hour = *r * 3600;
    }
    frame.workloads.push_back(std::move(w));
  }

  auto by_name = [](const TopWorkload& a, const TopWorkload& b) {
    return std::tie(a.name, a.kind) < std::tie(b.name, b.kind);
  };
  // Descending by a figure; rows without the figure go last.
  auto descending = [&](auto figure) {
    return [figure, by_name](const TopWorkload& a, const TopWorkload& b) {
      std::optional<double> x = figure(a), y = figure(b);
      if (x.has_value() != y.has_value()) return x.has_value();
      if (x && *x != *y) return *x > *y;
      return by_name(a, b);
    };
  };
  switch (input.sort) {
    case TopSort::watts:
      std::sort(frame.workloads.begin(), frame.workloads.end(),
                descending([](const TopWorkload& w) { return std::optional<double>(w.watts); }));
      break;
    case TopSort::cpu:
      std::sort(frame.workloads.begin(), frame.workloads.end(),
                descending([](const TopWorkload& w) { return w.cpu_share; }));
      break;
    case TopSort::co2e:
      std::sort(frame.workloads.begin(), frame.workloads.end(),
                descending([](const TopWorkload& w) { return w.co2e_grams_per_hour; }));
      break;
    case TopSort::name:
      std::sort(frame.workloads.begin(), frame.workloads.end(), by_name);
      break;
  }
  return frame;
}

std::vector<std::string> render_top_frame(const TopFrame& frame, int width, int height,
                                          bool attributes) {
  std::vector<std::string> out;
  if (width <= 0 || height <= 0) return out;
  Style style{attributes};
  auto line = [&](const std::string& text, std::string_view sgr = {}) {
    if (static_cast<int>(out.size()) >= height) return;
    std::string t = fit(text, width);
    out.push_back(sgr.empty() ? t : style(sgr, t));
  };

  std::string title = "wattprobe top  " + frame.origin;
  if (frame.has_data) {
    if (frame.seconds > 0) title += "  rates over " + number(frame.seconds, 1, 6) + " s";
    title += "  " + clock_text(frame.timestamp_ms);
  }
  line(pad_right(title, width), "1;7");

  std::vector<std::string> status;
  if (!frame.status.empty()) {
    std::vector<std::string> words;
    std::string word;
    for (char c : printable(frame.status)) {
      if (c == ' ') {
        if (!word.empty()) words.push_back(std::move(word));
        word.clear();
      } else {
        word += c;
      }
    }
    if (!word.empty()) words.push_back(word);
    status = wrap("", words, width, " ", "");
    // Beside figures a problem takes a few lines; on an empty screen, all it needs.
    std::size_t most = frame.has_data ? kMaxStatusLines : static_cast<std::size_t>(height);
    if (status.size() > most) status.resize(most);
  }
  if (!frame.has_data) {
    for (const std::string& s : status) line(s, "1;33");
    if (status.empty()) line("waiting for the first tick...");
    return out;
  }

  std::string host =
      "host " + watts_text(frame.host_watts) + (frame.host_measured ? " measured" : " ESTIMATE");
  if (!frame.host_domains.empty()) {
    std::string sum;
    for (const std::string& d : frame.host_domains) sum += (sum.empty() ? "" : "+") + d;
    host += " (" + sum + ")";
  }
  if (frame.idle_watts) host += "  idle " + watts_text(*frame.idle_watts);
  if (frame.grid_grams_per_kwh)
    host += "  grid " + number(*frame.grid_grams_per_kwh, 0, 8) + " g/kWh";
  if (!frame.accounting_mode.empty()) host += "  cpu " + frame.accounting_mode;
  line(host, frame.host_measured ? "1" : "1;33");
  for (const std::string& s : status) line(s, "1;33");

  // Node power by source and domain; the domains the host total adds are marked with '*'.
  std::vector<std::string> domain_lines;
  for (std::size_t i = 0; i < frame.domains.size();) {
    const std::string& source = frame.domains[i].source;
    std::vector<std::string> words;
    bool source_measured = true;
    for (; i < frame.domains.size() && frame.domains[i].source == source; ++i) {
      const TopDomain& d = frame.domains[i];
      source_measured = source_measured && d.measured;
      words.push_back(printable(d.domain) + (d.in_host_sum ? "*" : "") + " " + watts_text(d.watts));
    }
    auto lines = wrap(printable(source) + (source_measured ? " measured:" : " ESTIMATE:"), words,
                      width, "  ", "    ");
    domain_lines.insert(domain_lines.end(), lines.begin(), lines.end());
  }
  // Keep room for the header, three rows and the footer before showing every domain line.
  int room = height - static_cast<int>(out.size()) - 5;
  std::size_t domain_budget = std::min<std::size_t>(kMaxDomainLines, std::max(room, 1));
  if (domain_lines.size() > domain_budget) {
    domain_lines.resize(domain_budget);
    domain_lines.back() = fit(domain_lines.back(), width - 3) + "...";
  }
  for (const std::string& d : domain_lines) line(d);

  const int gpu_width = frame.has_gpu ? kGpuWidth + 1 : 0;  // the column and its gap
  const int name_width = std::max(kMinNameWidth, width - kFixedWidth - gpu_width);
  auto title_of = [&](TopSort s, std::string_view text) {
    return (frame.sort == s ? "*" : "") + std::string(text);
  };
  std::string header = pad_right(title_of(TopSort::name, "WORKLOAD"), name_width) + " " +
                       pad_right("KIND", kKindWidth) + " " +
                       pad_left(title_of(TopSort::watts, "WATTS"), kWattsWidth) + " " +
                       (frame.has_gpu ? pad_left("GPU W", kGpuWidth) + " " : "") +
                       pad_left(title_of(TopSort::co2e, "CO2E G/H"), kCo2eWidth) + " " +
                       pad_left(title_of(TopSort::cpu, "CPU %"), kCpuWidth) + " " +
                       pad_right("SRC", kSrcWidth);
  line(pad_right(header, width), "7");

  const int rows_room = height - static_cast<int>(out.size()) - 1;  // the footer's line
  const std::size_t shown =
      std::min(frame.workloads.size(), static_cast<std::size_t>(std::max(rows_room, 0)));
  for (std::size_t i = 0; i < shown; ++i) {
    const TopWorkload& w = frame.workloads[i];
    std::string row =
        pad_right(w.name, name_width) + " " + pad_right(w.kind, kKindWidth) + " " +
        pad_left(number(w.watts, 2, kWattsWidth), kWattsWidth) + " " +
        (frame.has_gpu
             ? pad_left(w.gpu_watts ? number(*w.gpu_watts, 2, kGpuWidth) : "-", kGpuWidth) + " "
             : "") +
        pad_left(w.co2e_grams_per_hour ? number(*w.co2e_grams_per_hour, 2, kCo2eWidth) : "-",
                 kCo2eWidth) +
        " " + pad_left(w.cpu_share ? number(*w.cpu_share * 100, 1, kCpuWidth) : "-", kCpuWidth) +
        " ";
    std::string row_fit = fit(row, width);
    if (static_cast<int>(row_fit.size()) < width) {
      std::string mark = fit(w.measured ? "meas" : "EST", width - static_cast<int>(row_fit.size()));
      row_fit += w.measured ? mark : style("1;33", mark);
    }
    if (static_cast<int>(out.size()) < height) out.push_back(row_fit);
  }

  std::string footer = "sort: w watts  c cpu  g co2e  n name   q quit   " + std::to_string(shown) +
                       " of " + std::to_string(frame.workloads.size()) + " workloads";
  if (static_cast<int>(out.size()) < height) line(footer, "2");
  return out;
}

}  // namespace wattprobe
