#include "agent/device_health.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

constexpr double kSecondsPerHour = 3600;

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

/// /proc/uptime's first field: seconds since boot.
Result<double> read_uptime(const HostPaths& paths) {
  const auto file = paths.proc("uptime");
  auto text = read_text(file, 256);
  if (!text) return text.error();
  std::string_view t = trim(*text);
  return parse_double(t.substr(0, t.find(' ')), file);
}

/// The longest power-on time of the NVMe drives: the best record of how long the device has
/// run, as the drives count it themselves across reboots.
std::optional<double> drive_power_on_seconds(const StorageWear& storage) {
  std::optional<double> out;
  for (const DriveWear& d : storage.drives) {
    if (!d.nvme) continue;
    double s = static_cast<double>(d.nvme->power_on_hours) * kSecondsPerHour;
    if (!out || s > *out) out = s;
  }
  return out;
}

}  // namespace

DeviceHealth::DeviceHealth(HostPaths paths, std::optional<int64_t> install_ms, double slow_every)
    : paths_(std::move(paths)),
      install_ms_(install_ms),
      slow_every_(slow_every),
      storage_(read_storage_wear(paths_)) {}

void DeviceHealth::note(const Error& e, const std::function<void(const std::string&)>& log) {
  // Bounded: a tree that produces a new message every tick must not grow the set forever.
  if (noted_.size() < 256 && noted_.insert(e.message()).second && log) {
    log("device health: " + e.message());
  }
}

void DeviceHealth::read_slow() {
  throttle_ = read_throttle_counts(paths_);
  temperatures_ = read_temperatures(paths_);
  auto up = read_uptime(paths_);
  uptime_seconds_ = up ? std::optional<double>(*up) : std::nullopt;
}

void DeviceHealth::tick(double seconds, int64_t now_ms,
                        const std::function<void(const std::string&)>& log) {
  batteries_ = read_batteries(paths_);
  for (const BatteryHealth& b : batteries_.batteries) {
    for (const Error& e : b.problems) note(e, log);
    if (b.capacity_ratio) capacity_ratio_[b.name] = *b.capacity_ratio;
    if (b.cycle_count) cycles_[b.name] = *b.cycle_count;
    auto& joules = discharged_joules_[b.name];
    if (b.discharge_watts) {
      // The watts read now stand for the tick just ended, as the hwmon power gauges do.
      if (!first_ && seconds > 0) joules += *b.discharge_watts * seconds;
      discharge_watts_[b.name] = *b.discharge_watts;
    }
  }
  since_slow_ += seconds;
  if (first_ || since_slow_ >= slow_every_) {
    since_slow_ = 0;
    read_slow();
    for (const Error& e : throttle_.problems) note(e, log);
    for (const Error& e : temperatures_.problems) note(e, log);
  }
  if (first_) {
    for (const DriveWear& d : storage_.drives) {
      if (d.problem) note(*d.problem, log);
    }
  }
  age_seconds_.reset();
  if (install_ms_ && now_ms >= *install_ms_) {
    age_seconds_ = static_cast<double>(now_ms - *install_ms_) / 1000.0;
  }
  first_ = false;
}

void DeviceHealth::append_families(std::vector<Family>& out) const {
  if (!capacity_ratio_.empty()) {
    Family f{"wattprobe_device_battery_capacity_ratio",
             "Full charge capacity against design (energy_full/energy_full_design, or the charge_* "
             "pair); 1 is as new.",
             MetricType::gauge};
    for (const auto& [name, v] : capacity_ratio_) f.series.push_back({{{"battery", name}}, v});
    out.push_back(std::move(f));
  }
  if (!cycles_.empty()) {
    Family f{"wattprobe_device_battery_cycle_count",
             "Charge cycles the battery reports (cycle_count).", MetricType::gauge};
    for (const auto& [name, v] : cycles_) {
      f.series.push_back({{{"battery", name}}, static_cast<double>(v)});
    }
    out.push_back(std::move(f));
  }
  if (!discharge_watts_.empty()) {
    Family w{"wattprobe_device_battery_discharge_watts",
             "Power the battery gives while the device runs on it (power_now, or current_now x "
             "voltage_now); 0 while charging or full.",
             MetricType::gauge};
    Family j{"wattprobe_device_battery_discharge_joules_total",
             "Energy the battery gave since the agent started: its discharge power integrated "
             "over each tick (integrated power, not a hardware counter).",
             MetricType::counter};
    for (const auto& [name, v] : discharge_watts_) {
      w.series.push_back({{{"battery", name}}, v});
      auto it = discharged_joules_.find(name);
      j.series.push_back({{{"battery", name}}, it == discharged_joules_.end() ? 0 : it->second});
    }
    out.push_back(std::move(w));
    out.push_back(std::move(j));
  }
  if (throttle_.found) {
    Family f{"wattprobe_device_thermal_throttle_events_total",
             "CPU thermal-throttle events the kernel counted since boot: scope=\"core\" summed "
             "over the CPUs, scope=\"package\" per physical package.",
             MetricType::counter};
    f.series.push_back(
        {{{"scope", "core"}, {"package", ""}}, static_cast<double>(throttle_.core_events)});
    for (const auto& [package, v] : throttle_.package_events) {
      f.series.push_back(
          {{{"scope", "package"}, {"package", std::to_string(package)}}, static_cast<double>(v)});
    }
    out.push_back(std::move(f));
  }
  if (!temperatures_.devices.empty()) {
    // Which sensor is hottest changes from read to read; as a label it would start a new
    // series each time, so doctor names it and the series is per device only.
    Family f{"wattprobe_device_temperature_max_celsius",
             "The hottest temperature sensor of each device (hwmon chip or thermal zone).",
             MetricType::gauge};
    for (const HottestSensor& s : temperatures_.devices) {
      f.series.push_back({{{"device", s.device}}, s.celsius});
    }
    out.push_back(std::move(f));
  }
  Family wear{"wattprobe_device_storage_wear_ratio",
              "An NVMe drive's life used, its SMART \"percentage used\" / 100 (may pass 1); read "
              "once at start.",
              MetricType::gauge};
  Family hours{"wattprobe_device_storage_power_on_seconds",
               "An NVMe drive's SMART power-on hours, in seconds, as read at start.",
               MetricType::gauge};
  for (const DriveWear& d : storage_.drives) {
    if (!d.nvme) continue;
    wear.series.push_back(
        {{{"device", d.device}, {"model", d.model}}, d.nvme->percentage_used / 100.0});
    hours.series.push_back({{{"device", d.device}, {"model", d.model}},
                            static_cast<double>(d.nvme->power_on_hours) * kSecondsPerHour});
  }
  if (!wear.series.empty()) {
    out.push_back(std::move(wear));
    out.push_back(std::move(hours));
  }
  if (uptime_seconds_) {
    out.push_back({"wattprobe_device_uptime_seconds",
                   "Seconds since the device last booted.",
                   MetricType::gauge,
                   {{{}, *uptime_seconds_}}});
  }
  if (auto powered = drive_power_on_seconds(storage_);
      powered && age_seconds_ && *age_seconds_ > 0) {
    out.push_back({"wattprobe_device_powered_on_ratio",
                   "Share of the device's age (since --install-date) it has been running, from "
                   "its longest-running NVMe drive's power-on hours; capped at 1.",
                   MetricType::gauge,
                   {{{{"from", "nvme_power_on_hours"}}, std::min(*powered / *age_seconds_, 1.0)}}});
  }
}

std::string DeviceHealth::doctor_report(int64_t now_ms) {
  tick(0, now_ms, {});
  std::ostringstream out;
  out << "\nDevice health:\n";
  if (batteries_.batteries.empty()) out << "  batteries: none - " << batteries_.none_reason << "\n";
  for (const BatteryHealth& b : batteries_.batteries) {
    out << "  battery " << b.name << ":";
    if (b.capacity_ratio) {
      out << " capacity " << fixed(*b.capacity_ratio * 100, 1) << " % of design (from "
          << b.capacity_from << "_*)";
    } else {
      out << " capacity against design unknown";
    }
    out << "; cycles " << (b.cycle_count ? std::to_string(*b.cycle_count) : "unknown");
    if (b.discharging) {
      out << "; discharging"
          << (b.discharge_watts
                  ? " at " + fixed(*b.discharge_watts, 2) + " W (" + b.power_from + ")"
                  : "");
    }
    out << "\n";
    for (const Error& e : b.problems) out << "      not read: " << e.message() << "\n";
  }
  if (throttle_.found) {
    out << "  thermal throttling: " << throttle_.core_events << " core events";
    for (const auto& [package, v] : throttle_.package_events) {
      out << ", package " << package << ": " << v;
    }
    out << " since boot\n";
  } else {
    out << "  thermal throttling: not counted - " << throttle_.none_reason << "\n";
  }
  for (const Error& e : throttle_.problems) out << "      not read: " << e.message() << "\n";
  if (temperatures_.devices.empty()) {
    out << "  temperatures: none - " << temperatures_.none_reason << "\n";
  }
  for (const HottestSensor& s : temperatures_.devices) {
    out << "  hottest sensor of " << s.device << ": " << s.sensor << " at " << fixed(s.celsius, 1)
        << " °C\n";
  }
  for (const Error& e : temperatures_.problems) out << "      not read: " << e.message() << "\n";
  if (storage_.drives.empty()) out << "  storage wear: none - " << storage_.none_reason << "\n";
  for (const DriveWear& d : storage_.drives) {
    out << "  storage " << d.device << (d.model.empty() ? "" : " (" + d.model + ")") << ": ";
    if (d.nvme) {
      out << "wear " << static_cast<int>(d.nvme->percentage_used) << " % used, "
          << d.nvme->power_on_hours << " power-on hours, spare "
          << static_cast<int>(d.nvme->available_spare) << " %"
          << (d.nvme->critical_warning ? ", CRITICAL WARNING set" : "")
          << " (read once at start)\n";
    } else {
      out << "wear not read - " << d.problem->message() << "\n";
    }
  }
  out << "  uptime: "
      << (uptime_seconds_ ? fixed(*uptime_seconds_ / 86400, 2) + " days since boot"
                          : std::string("unknown (no readable proc/uptime)"))
      << "\n";
  auto powered = drive_power_on_seconds(storage_);
  out << "  powered-on share of age: ";
  if (!age_seconds_) {
    out << "unknown - no --install-date";
  } else if (!powered) {
    out << "unknown - no NVMe drive's power-on hours were readable";
  } else {
    out << fixed(std::min(*powered / std::max(*age_seconds_, 1.0), 1.0) * 100, 1)
        << " % (NVMe power-on hours over the age since --install-date)";
  }
  out << "\n";
  return out.str();
}

}  // namespace wattprobe
