#include "collectors/health/battery.h"

#include <algorithm>
#include <cmath>
#include <system_error>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

/// An attribute that may be missing: nullopt without a problem when the file does not exist,
/// nullopt with a problem when it exists but cannot be read or parsed.
std::optional<int64_t> optional_i64(const fs::path& file, std::vector<Error>& problems) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  auto text = read_text(file, 256);
  if (!text) {
    problems.push_back(text.error());
    return std::nullopt;
  }
  auto v = parse_i64(*text, file);
  if (!v) {
    problems.push_back(v.error());
    return std::nullopt;
  }
  return *v;
}

/// full / full_design for one unit pair ("energy" or "charge"); false when the pair is absent.
bool capacity(const fs::path& dir, const std::string& unit, BatteryHealth& b) {
  std::error_code ec;
  const fs::path full = dir / (unit + "_full");
  const fs::path design = dir / (unit + "_full_design");
  if (!fs::exists(full, ec) && !fs::exists(design, ec)) return false;
  auto f = optional_i64(full, b.problems);
  auto d = optional_i64(design, b.problems);
  if (f && !d && fs::exists(full, ec) && !fs::exists(design, ec)) {
    b.problems.push_back(Error{ErrorKind::absent, design.string(),
                               "missing, so the capacity against design cannot be computed"});
  } else if (d && !f && !fs::exists(full, ec)) {
    b.problems.push_back(Error{ErrorKind::absent, full.string(),
                               "missing, so the capacity against design cannot be computed"});
  }
  if (!f || !d) return true;
  // A zero or negative design is a firmware that does not know it: no ratio rather than a
  // division by zero or a negative health.
  if (*d <= 0) {
    b.problems.push_back(Error{ErrorKind::malformed, design.string(),
                               std::to_string(*d) + " is not a usable design capacity"});
    return true;
  }
  if (*f < 0) {
    b.problems.push_back(Error{ErrorKind::malformed, full.string(),
                               std::to_string(*f) + " is not a usable full capacity"});
    return true;
  }
  b.capacity_ratio = static_cast<double>(*f) / static_cast<double>(*d);
  b.capacity_from = unit;
  return true;
}

}  // namespace

BatteryScan read_batteries(const HostPaths& paths) {
  BatteryScan out;
  const fs::path root = paths.sys("class/power_supply");
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    out.none_reason = "no " + root.string() + " (no power supply class in this kernel or tree)";
    return out;
  }
  std::vector<fs::path> supplies;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code kind;
    if (it->is_directory(kind)) supplies.push_back(it->path());
  }
  std::sort(supplies.begin(), supplies.end());
  for (const fs::path& dir : supplies) {
    auto type = read_text(dir / "type", 64);
    if (!type || trim(*type) != "Battery") continue;
    BatteryHealth b;
    b.name = dir.filename().string();
    if (!capacity(dir, "energy", b) && !capacity(dir, "charge", b)) {
      b.problems.push_back(Error{ErrorKind::absent, dir.string(),
                                 "neither energy_full/energy_full_design nor "
                                 "charge_full/charge_full_design: no capacity against design"});
    }
    if (auto cycles = optional_i64(dir / "cycle_count", b.problems)) {
      if (*cycles < 0) {
        b.problems.push_back(Error{ErrorKind::malformed, (dir / "cycle_count").string(),
                                   std::to_string(*cycles) + " is not a cycle count"});
      } else {
        b.cycle_count = static_cast<uint64_t>(*cycles);
      }
    }
    if (auto status = read_text(dir / "status", 64); status) {
      b.discharging = trim(*status) == "Discharging";
    }
    if (b.discharging) {
      if (auto p = optional_i64(dir / "power_now", b.problems)) {
        b.discharge_watts = std::fabs(static_cast<double>(*p)) / 1e6;
        b.power_from = "power_now";
      } else {
        auto i = optional_i64(dir / "current_now", b.problems);
        auto v = optional_i64(dir / "voltage_now", b.problems);
        if (i && v) {
          // µA × µV = 1e-12 W.
          b.discharge_watts =
              std::fabs(static_cast<double>(*i)) * std::fabs(static_cast<double>(*v)) / 1e12;
          b.power_from = "current_now x voltage_now";
        } else {
          b.problems.push_back(Error{ErrorKind::absent, dir.string(),
                                     "discharging, but neither power_now nor current_now with "
                                     "voltage_now is readable: its power is unknown"});
        }
      }
    } else {
      b.discharge_watts = 0;
    }
    out.batteries.push_back(std::move(b));
  }
  if (ec) {
    out.none_reason = error_from_errno(ec.value(), root.string(), "list").message();
  } else if (supplies.empty()) {
    out.none_reason = "no power supply under " + root.string();
  } else if (out.batteries.empty()) {
    out.none_reason = std::to_string(supplies.size()) +
                      (supplies.size() == 1 ? " power supply" : " power supplies") +
                      ", none of type Battery";
  }
  return out;
}

}  // namespace wattprobe
