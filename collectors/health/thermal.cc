#include "collectors/health/thermal.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <system_error>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

/// "cpu12" → 12, "thermal_zone3" → 3 with the prefix given; false for anything else.
bool numbered(std::string_view name, std::string_view prefix, int& n) {
  if (name.size() <= prefix.size() || name.substr(0, prefix.size()) != prefix) return false;
  std::string_view digits = name.substr(prefix.size());
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  return ec == std::errc() && end == digits.data() + digits.size() && n >= 0;
}

std::vector<std::pair<int, fs::path>> numbered_folders(const fs::path& root,
                                                       std::string_view prefix) {
  std::vector<std::pair<int, fs::path>> out;
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    int n = 0;
    if (numbered(it->path().filename().string(), prefix, n)) out.emplace_back(n, it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// A temperature in m°C as hwmon and thermal zones give it; below absolute zero or above
/// 1000 °C is a broken sensor (some report -273200 or 0x7fffffff when absent).
Result<double> read_millicelsius(const fs::path& file) {
  auto text = read_text(file, 64);
  if (!text) return text.error();
  auto v = parse_i64(*text, file);
  if (!v) return v.error();
  if (*v < -273150 || *v > 1000000) {
    return Error{ErrorKind::malformed, file.string(),
                 std::to_string(*v) + " m°C is outside any real temperature"};
  }
  return static_cast<double>(*v) / 1000.0;
}

}  // namespace

ThrottleCounts read_throttle_counts(const HostPaths& paths) {
  ThrottleCounts out;
  const fs::path root = paths.sys("devices/system/cpu");
  std::set<int> packages_seen;
  std::map<int, uint64_t> packages;
  for (const auto& [cpu, dir] : numbered_folders(root, "cpu")) {
    const fs::path throttle = dir / "thermal_throttle";
    std::error_code ec;
    if (!fs::is_directory(throttle, ec)) continue;
    out.found = true;
    if (auto core = read_u64(throttle / "core_throttle_count"); core) {
      out.core_events += *core;
    } else if (core.error().kind != ErrorKind::absent) {
      out.problems.push_back(core.error());
    }
    int package = 0;
    if (auto id = read_text(dir / "topology/physical_package_id", 64); id) {
      auto n = parse_i64(*id, dir / "topology/physical_package_id");
      if (n && *n >= 0) package = static_cast<int>(*n);
    }
    if (!packages_seen.insert(package).second) continue;
    if (auto pkg = read_u64(throttle / "package_throttle_count"); pkg) {
      packages[package] = *pkg;
    } else if (pkg.error().kind != ErrorKind::absent) {
      out.problems.push_back(pkg.error());
    }
  }
  out.package_events.assign(packages.begin(), packages.end());
  if (!out.found) {
    out.none_reason = "no " + (root / "cpu*/thermal_throttle").string() +
                      " (not an x86 CPU with thermal interrupts, or a VM that hides them)";
  }
  return out;
}

Temperatures read_temperatures(const HostPaths& paths) {
  Temperatures out;
  std::map<std::string, HottestSensor> hottest;
  std::map<std::string, int> names;
  struct Chip {
    std::string name, device;
    fs::path dir;
  };
  std::vector<Chip> chips;
  for (const auto& [n, folder] : numbered_folders(paths.sys("class/hwmon"), "hwmon")) {
    Chip c{"", folder.filename().string(), folder};
    std::error_code ec;
    if (!fs::exists(c.dir / "name", ec) && fs::exists(c.dir / "device" / "name", ec)) {
      c.dir /= "device";
    }
    auto name = read_text(c.dir / "name", 256);
    if (!name) continue;
    c.name = std::string(trim(*name));
    auto link = fs::read_symlink(folder / "device", ec);
    if (!ec && !link.filename().empty()) c.device = link.filename().string();
    ++names[c.name];
    chips.push_back(std::move(c));
  }
  for (const Chip& c : chips) {
    const std::string device = names[c.name] > 1 ? c.name + "@" + c.device : c.name;
    std::error_code ec;
    std::vector<std::string> stems;
    for (fs::directory_iterator it(c.dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string file = it->path().filename().string();
      int k = 0;
      if (file.size() > 6 && file.ends_with("_input") &&
          numbered(std::string_view(file).substr(0, file.size() - 6), "temp", k)) {
        stems.push_back(file.substr(0, file.size() - 6));
      }
    }
    std::sort(stems.begin(), stems.end());
    for (const std::string& stem : stems) {
      auto t = read_millicelsius(c.dir / (stem + "_input"));
      if (!t) {
        out.problems.push_back(t.error());
        continue;
      }
      std::string sensor = stem;
      if (auto label = read_text(c.dir / (stem + "_label"), 256); label && !trim(*label).empty()) {
        sensor = std::string(trim(*label));
      }
      auto [it, fresh] = hottest.try_emplace(device, HottestSensor{device, sensor, *t});
      if (!fresh && *t > it->second.celsius) it->second = HottestSensor{device, sensor, *t};
    }
  }
  for (const auto& [n, zone] : numbered_folders(paths.sys("class/thermal"), "thermal_zone")) {
    auto type = read_text(zone / "type", 256);
    if (!type) continue;
    const std::string device(trim(*type));
    if (names.count(device) || hottest.count(device)) continue;
    auto t = read_millicelsius(zone / "temp");
    if (!t) {
      out.problems.push_back(t.error());
      continue;
    }
    auto [it, fresh] =
        hottest.try_emplace(device, HottestSensor{device, zone.filename().string(), *t});
    if (!fresh && *t > it->second.celsius) {
      it->second = HottestSensor{device, zone.filename().string(), *t};
    }
  }
  for (auto& [device, s] : hottest) out.devices.push_back(std::move(s));
  if (out.devices.empty()) {
    out.none_reason = "no readable temp*_input under " + paths.sys("class/hwmon").string() +
                      " and no thermal zone under " + paths.sys("class/thermal").string();
  }
  return out;
}

}  // namespace wattprobe
