#include "collectors/energy/hwmon.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include "agent/base/log.h"
#include "agent/base/text_file.h"
#include "collectors/gpu/drm_fdinfo.h"

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

// "power12_average" with prefix "power" and suffix "_average" → 12.
bool sensor_index(std::string_view file, std::string_view prefix, std::string_view suffix,
                  int& index) {
  if (file.size() <= prefix.size() + suffix.size() || file.substr(0, prefix.size()) != prefix ||
      file.substr(file.size() - suffix.size()) != suffix) {
    return false;
  }
  std::string_view digits = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
  return ec == std::errc() && end == digits.data() + digits.size() && index >= 0;
}

std::string chip_domain(std::string_view chip) {
  if (chip == "amdgpu" || chip == "i915" || chip == "xe" || chip == "nouveau") return "gpu";
  return "platform";
}

std::string optional_label(const fs::path& file) {
  auto text = read_text(file, 256);
  return text ? std::string(trim(*text)) : std::string();
}

// From the held descriptor; a sensor unreadable at probe is opened again (a udev rule may have
// made it readable since).
Result<uint64_t> read_sensor(HwmonSource::Sensor& s) {
  if (!s.held.is_open()) {
    auto held = HeldFile::open(s.file);
    if (!held) return held.error();
    s.held = std::move(*held);
  }
  auto text = s.held.read(256);
  if (!text) return text.error();
  return parse_u64(*text, s.file);
}

/// Drivers whose rails pair by channel number alone: channel K is inK_input with currK_input for
/// K in [first, last]. The ina3221 driver (Documentation/hwmon/ina3221.rst) gives the bus
/// voltage of channel K in inK and its shunt voltage in in(K+3); only the bus voltage times the
/// current is the rail's power.
struct ChannelPairing {
  std::string_view driver;
  int first, last;
};
constexpr ChannelPairing kChannelPairings[] = {{"ina3221", 1, 3}};

/// The label of a board's input rail: "VDD_IN" (Jetson Xavier and Orin), "POM_5V_IN" (Nano).
bool is_board_input(std::string_view label) {
  std::string upper(label);
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return upper.size() > 3 && upper.ends_with("_IN");
}

struct Chip {
  std::string hwmon;  // hwmonN
  std::string name;
  std::string device;  // basename of the `device` link: stable where hwmonN is not
  fs::path dir;
  std::vector<HwmonSource::Sensor> sensors;  // keys hold only the sensor stem until prefixed
};

/// The chip's V × I rails, paired as the class comment says; parts first, then the total or sum.
void add_rails(Chip& chip, std::vector<int> volts, const std::vector<int>& amps,
               std::vector<std::string>& notes) {
  std::sort(volts.begin(), volts.end());
  const ChannelPairing* by_channel = nullptr;
  for (const auto& p : kChannelPairings) {
    if (p.driver == chip.name) by_channel = &p;
  }
  std::vector<HwmonSource::Sensor> rails;
  std::vector<std::string> unpaired;
  for (int k : volts) {
    if (std::find(amps.begin(), amps.end(), k) == amps.end()) continue;
    const std::string in = "in" + std::to_string(k), curr = "curr" + std::to_string(k);
    std::string label = optional_label(chip.dir / (in + "_label"));
    if (by_channel) {
      if (k < by_channel->first || k > by_channel->last) continue;
    } else {
      const std::string curr_label = optional_label(chip.dir / (curr + "_label"));
      if (label.empty() || label != curr_label) {
        unpaired.push_back(in + "/" + curr);
        continue;
      }
    }
    HwmonSource::Sensor s;
    s.key = "rail" + std::to_string(k);
    s.domain = "rail";
    s.kind = ReadingKind::power_gauge;
    s.file = chip.dir / (in + "_input");
    s.label = label;
    s.current_file = chip.dir / (curr + "_input");
    s.rail_role = "part";
    rails.push_back(std::move(s));
  }
  if (!unpaired.empty()) {
    notes.push_back(chip.name + ": " + join(unpaired, ", ") +
                    " not paired: no pairing is known for this driver and their labels differ");
  }
  if (rails.empty()) return;
  auto total = std::find_if(rails.begin(), rails.end(),
                            [](const auto& r) { return is_board_input(r.label); });
  if (rails.size() == 1) {
    rails.front().rail_role = "total";
    rails.front().domain = "platform";
  } else if (total != rails.end()) {
    total->rail_role = "total";
    total->domain = "platform";
    // The total last, so the parts keep their channel order.
    std::rotate(total, total + 1, rails.end());
  } else {
    HwmonSource::Sensor sum;
    sum.key = "rails_sum";
    sum.domain = "platform";
    sum.kind = ReadingKind::power_gauge;
    sum.rail_role = "sum";
    for (std::size_t i = 0; i < rails.size(); ++i) sum.sum_of.push_back(i);  // chip-relative
    rails.push_back(std::move(sum));
  }
  for (auto& r : rails) chip.sensors.push_back(std::move(r));
}

}  // namespace

HwmonSource::HwmonSource(const HostPaths& paths) : paths_(paths) {}

bool HwmonSource::measures_cpu() const {
  return std::any_of(sensors_.begin(), sensors_.end(),
                     [](const Sensor& s) { return s.domain != "gpu"; });
}

Availability HwmonSource::probe() {
  probed_ = true;
  sensors_.clear();
  limits_.clear();
  rail_rows_ = 0;
  const fs::path root = paths_.sys("class/hwmon");
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return {false, "no " + root.string() + ": kernel without CONFIG_HWMON", ""};
  }
  std::vector<std::pair<int, std::string>> folders;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string folder = it->path().filename().string();
    int n = 0;
    if (sensor_index(folder + "_", "hwmon", "_", n)) folders.emplace_back(n, folder);
  }
  if (ec) return {false, error_from_errno(ec.value(), root.string(), "list").message(), ""};
  std::sort(folders.begin(), folders.end());

  std::vector<std::string> notes;
  std::vector<std::string> silent_chips;
  std::vector<Chip> chips;
  for (const auto& [n, folder] : folders) {
    Chip chip{folder, "", folder, root / folder, {}};
    // Old drivers keep their attributes in the parent device's folder, not in hwmonN.
    if (!fs::exists(chip.dir / "name", ec) && fs::exists(chip.dir / "device" / "name", ec)) {
      chip.dir /= "device";
    }
    auto name = read_text(chip.dir / "name", 256);
    if (!name) {
      notes.push_back("skipped " + folder + ": " + name.error().message());
      continue;
    }
    chip.name = std::string(trim(*name));
    auto device = fs::read_symlink(root / folder / "device", ec);
    if (!ec && !device.filename().empty()) chip.device = device.filename().string();

    std::map<int, std::string> power_file;  // K → the one file chosen for power K
    std::vector<int> energy;
    std::vector<int> volts, amps;
    for (fs::directory_iterator it(chip.dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string file = it->path().filename().string();
      int k = 0;
      if (sensor_index(file, "in", "_input", k)) {
        volts.push_back(k);
      } else if (sensor_index(file, "curr", "_input", k)) {
        amps.push_back(k);
      } else if (sensor_index(file, "power", "_average", k)) {
        power_file[k] = file;
      } else if (sensor_index(file, "power", "_input", k)) {
        power_file.try_emplace(k, file);
      } else if (sensor_index(file, "energy", "_input", k)) {
        energy.push_back(k);
      }
    }
    std::sort(energy.begin(), energy.end());
    if (!energy.empty() && !power_file.empty()) {
      notes.push_back(chip.name + ": power sensors ignored, its energy counters are exact");
    }

    int per_core = 0;
    if (!energy.empty()) {
      for (int k : energy) {
        const std::string stem = "energy" + std::to_string(k);
        Sensor s{stem,
                 chip_domain(chip.name),
                 -1,
                 ReadingKind::energy_counter,
                 chip.dir / (stem + "_input"),
                 optional_label(chip.dir / (stem + "_label")),
                 {},
                 {}};
        if (chip.name == "amd_energy") {
          int socket = -1;
          if (s.label.rfind("Ecore", 0) == 0) {
            ++per_core;
            continue;
          }
          if (!sensor_index(s.label + "_", "Esocket", "_", socket)) {
            notes.push_back("skipped amd_energy/" + stem + ": unknown label " +
                            quote_for_error(s.label));
            continue;
          }
          s.domain = "package";
          s.socket = socket;
        }
        chip.sensors.push_back(std::move(s));
      }
    } else if (power_file.empty()) {
      add_rails(chip, volts, amps, notes);
    } else {
      for (const auto& [k, file] : power_file) {
        const std::string stem = "power" + std::to_string(k);
        chip.sensors.push_back(Sensor{stem,
                                      chip_domain(chip.name),
                                      -1,
                                      ReadingKind::power_gauge,
                                      chip.dir / file,
                                      optional_label(chip.dir / (stem + "_label")),
                                      {},
                                      {}});
      }
    }
    if (per_core > 0) {
      notes.push_back("skipped " + std::to_string(per_core) +
                      " amd_energy per-core counters (Ecore*): the per-socket counters cover them");
    }
    if (chip.sensors.empty()) {
      silent_chips.push_back(chip.name);
      continue;
    }
    chips.push_back(std::move(chip));
  }

  std::map<std::string, int> name_count;
  for (const auto& c : chips) ++name_count[c.name];
  std::vector<std::string> listed;
  std::vector<Error> read_errors;
  int gpus = 0;
  for (auto& c : chips) {
    const std::string prefix = name_count[c.name] > 1 ? c.name + "@" + c.device : c.name;
    const bool gpu = chip_domain(c.name) == "gpu";
    const std::size_t first = sensors_.size();
    for (auto& s : c.sensors) {
      s.key = prefix + "/" + s.key;
      if (gpu) s.socket = gpus;
      // A PCI address is domain:bus:device.function; platform devices have other names.
      if (c.device.size() == 12 && c.device[4] == ':' && c.device[7] == ':' && c.device[10] == '.')
        s.pci_address = c.device;
      std::string how = s.file.filename().string();
      if (s.rail_role == "sum") {
        for (std::size_t& i : s.sum_of) i += first;
        how = "the sum of its rails";
      } else {
        // Energy and power inputs are held open across the privilege drop; rails' inK/currK are
        // world-readable and read by name.
        if (s.current_file.empty()) {
          if (auto held = HeldFile::open(s.file)) s.held = std::move(*held);
        }
        auto v = s.current_file.empty() ? read_sensor(s) : read_u64(s.file);
        if (!v) read_errors.push_back(v.error());
        if (!s.current_file.empty()) {
          if (auto a = read_u64(s.current_file); !a && v) read_errors.push_back(a.error());
          how += " x " + s.current_file.filename().string() + ", integrated power";
          if (!s.label.empty()) how += ", " + s.label;
        }
        // Each rail is its own row of domain "rail", so parts of different chips never merge.
        if (s.rail_role == "part") s.socket = rail_rows_++;
      }
      std::string where = s.domain;
      if (!s.rail_role.empty()) where += " " + s.rail_role;
      if (s.socket >= 0) where += " socket " + std::to_string(s.socket);
      listed.push_back(s.key + " (" + where + ", " + how + ")");
      sensors_.push_back(std::move(s));
    }
    if (gpu) {
      LimitFile l;
      l.socket = gpus;
      const bool pl1 = c.name == "i915" || c.name == "xe";
      if (fs::exists(c.dir / "power1_cap", ec)) {
        l.file = c.dir / "power1_cap";
      } else if (pl1 && fs::exists(c.dir / "power1_max", ec)) {
        l.file = c.dir / "power1_max";
      } else {
        l.why = c.name + " states no " + (pl1 ? "power1_cap or power1_max" : "power1_cap");
      }
      limits_.push_back(std::move(l));
      ++gpus;
    }
  }

  Availability out;
  // A rails' sum reads no file of its own: it is as readable as its parts.
  const std::size_t read_files = static_cast<std::size_t>(std::count_if(
      sensors_.begin(), sensors_.end(), [](const Sensor& s) { return s.rail_role != "sum"; }));
  const std::size_t readable = read_files - std::min(read_errors.size(), read_files);
  if (sensors_.empty()) {
    out.reason = "no hwmon power or energy sensors";
    if (!silent_chips.empty()) out.reason += " (chips: " + join(silent_chips, ", ") + ")";
  } else {
    out.reason = std::to_string(sensors_.size()) +
                 (sensors_.size() == 1 ? " sensor: " : " sensors: ") + join(listed, ", ");
    if (readable == 0) {
      out.reason = "none readable of " + out.reason + ": " + read_errors.front().message();
    } else if (!read_errors.empty()) {
      notes.push_back(std::to_string(read_errors.size()) +
                      " unreadable: " + read_errors.front().message());
    }
  }
  if (std::any_of(read_errors.begin(), read_errors.end(),
                  [](const Error& e) { return e.kind == ErrorKind::permission; })) {
    out.remedy = "run as root, or a udev rule giving the agent's group read access to the sensor";
  }
  if (!notes.empty()) out.reason += "; " + join(notes, "; ");
  out.available = readable > 0;
  return out;
}

void HwmonSource::read_power_limits() {
  for (LimitFile& l : limits_) {
    if (l.file.empty()) continue;
    auto text = read_text(l.file, 256);
    auto watts =
        text ? parse_hwmon_power_limit(*text, l.file) : Result<std::optional<double>>(text.error());
    if (!watts) {
      // The last good limit stays; a bad file is said once, not every tick.
      const std::string problem = watts.error().message();
      if (problem != l.logged) {
        l.logged = problem;
        log_printf("hwmon: GPU %d power limit not read: %s", l.socket, problem.c_str());
      }
      if (!l.watts) l.why = problem;
      continue;
    }
    l.logged.clear();
    l.watts = *watts;
    if (!l.watts) l.why = l.file.string() + " reads 0: the limit is off";
  }
}

std::vector<GpuPowerLimit> HwmonSource::gpu_power_limits() const {
  std::vector<GpuPowerLimit> out;
  for (const LimitFile& l : limits_)
    out.push_back({"hwmon", l.socket, l.watts, l.watts ? "" : l.why});
  return out;
}

Sample HwmonSource::sample() {
  if (!probed_) (void)probe();
  read_power_limits();
  Sample out;
  out.readings.reserve(sensors_.size());
  std::vector<std::optional<double>> rail_watts(sensors_.size());
  for (std::size_t i = 0; i < sensors_.size(); ++i) {
    Sensor& s = sensors_[i];
    if (!s.rail_role.empty()) {
      std::optional<double> watts;
      if (s.rail_role == "sum") {
        watts = 0.0;
        for (std::size_t part : s.sum_of) {
          // A part that could not be read leaves the sum unknown for this tick, never short.
          if (!rail_watts[part]) {
            watts.reset();
            break;
          }
          *watts += *rail_watts[part];
        }
      } else {
        auto mv = read_u64(s.file);
        auto ma = mv ? read_u64(s.current_file) : Result<uint64_t>(mv.error());
        if (!ma) {
          out.errors.push_back(ma.error());
          continue;
        }
        // mV × mA = µW.
        watts = static_cast<double>(*mv) * static_cast<double>(*ma) / 1e6;
      }
      rail_watts[i] = watts;
      if (!watts) continue;
      Reading r;
      r.domain = s.domain;
      r.socket = s.socket;
      r.key = s.key;
      r.kind = ReadingKind::power_gauge;
      r.watts = *watts;
      out.readings.push_back(std::move(r));
      continue;
    }
    // Both units are unsigned in the hwmon ABI: power in µW, energy in µJ.
    auto v = read_sensor(s);
    if (!v) {
      out.errors.push_back(v.error());
      continue;
    }
    Reading r;
    r.domain = s.domain;
    r.socket = s.socket;
    r.key = s.key;
    r.kind = s.kind;
    r.raw = *v;
    if (s.kind == ReadingKind::power_gauge) {
      r.watts = static_cast<double>(*v) / 1e6;
    } else {
      // Energy attributes are 64-bit accumulators (amd_energy widens the 32-bit MSR itself).
      r.modulus = 0;
      r.unit_joules = 1e-6;
    }
    out.readings.push_back(std::move(r));
  }
  return out;
}

void HwmonSource::append_families(std::vector<Family>& out) const {
  Family f{"wattprobe_hwmon_rail_info",
           "Power rails hwmon reads as voltage x current (no power sensor): their energy is "
           "integrated power. role: total (the board's input, domain platform), part (domain "
           "rail, inside the total, never added), sum (the parts added up, domain platform).",
           MetricType::gauge};
  for (const Sensor& s : sensors_) {
    if (s.rail_role.empty()) continue;
    f.series.push_back({{{"rail", s.key},
                         {"label", s.label},
                         {"domain", s.domain},
                         {"socket", s.socket < 0 ? "" : std::to_string(s.socket)},
                         {"role", s.rail_role},
                         {"energy", "integrated_power"}},
                        1});
  }
  if (!f.series.empty()) out.push_back(std::move(f));
}

std::unique_ptr<EnergySource> make_hwmon_source(const HostPaths& paths) {
  return std::make_unique<HwmonSource>(paths);
}

DoctorSection HwmonSource::doctor_section() {
  DoctorSection section;
  std::optional<DrmScan> scan;
  for (const Sensor& sensor : sensors_) {
    if (sensor.domain != "gpu") continue;
    section.title = "GPUs (hwmon)";
    std::string line = sensor.key + (sensor.label.empty() ? "" : " (" + sensor.label + ")") +
                       ", GPU " + std::to_string(sensor.socket) +
                       ": energy measured; split by process: ";
    if (sensor.pci_address.empty()) {
      section.lines.push_back(line +
                              "none - the chip names no PCI device to match the kernel's DRM "
                              "clients with, so its dynamic energy is unattributed, never split "
                              "by CPU time");
      continue;
    }
    if (!scan) scan = scan_drm_clients(paths_);
    std::set<uint32_t> holders;
    for (const DrmClient& c : scan->clients) {
      if (c.pdev == sensor.pci_address) holders.insert(c.pid);
    }
    line += "DRM busy time of " + sensor.pci_address + " (drm-engine-* in " +
            paths_.proc().string() + "/<pid>/fdinfo); ";
    if (holders.empty()) {
      line +=
          "no process holds a DRM client of it now, so its dynamic energy is unattributed until "
          "one does, never split by CPU time";
    } else {
      line += std::to_string(holders.size()) +
              (holders.size() == 1 ? " process holds" : " processes hold") +
              " a DRM client of it now";
    }
    section.lines.push_back(line);
  }
  return section;
}

}  // namespace wattprobe
