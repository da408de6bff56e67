#include "collectors/hwmon.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <system_error>
#include <utility>

#include "agent/base/text_file.h"

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

struct Chip {
  std::string hwmon;  // hwmonN
  std::string name;
  std::string device;  // basename of the `device` link: stable where hwmonN is not
  fs::path dir;
  std::vector<HwmonSource::Sensor> sensors;  // keys hold only the sensor stem until prefixed
};

}  // namespace

HwmonSource::HwmonSource(const HostPaths& paths) : paths_(paths) {}

bool HwmonSource::measures_cpu() const {
  return std::any_of(sensors_.begin(), sensors_.end(),
                     [](const Sensor& s) { return s.domain != "gpu"; });
}

Availability HwmonSource::probe() {
  probed_ = true;
  sensors_.clear();
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
    for (fs::directory_iterator it(chip.dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string file = it->path().filename().string();
      int k = 0;
      if (sensor_index(file, "power", "_average", k)) {
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
    for (auto& s : c.sensors) {
      s.key = prefix + "/" + s.key;
      if (gpu) s.socket = gpus;
      // A PCI address is domain:bus:device.function; platform devices have other names.
      if (c.device.size() == 12 && c.device[4] == ':' && c.device[7] == ':' && c.device[10] == '.')
        s.pci_address = c.device;
      if (auto held = HeldFile::open(s.file)) s.held = std::move(*held);
      auto v = read_sensor(s);
      if (!v) read_errors.push_back(v.error());
      std::string where = s.domain;
      if (s.socket >= 0) where += " socket " + std::to_string(s.socket);
      listed.push_back(s.key + " (" + where + ", " + s.file.filename().string() + ")");
      sensors_.push_back(std::move(s));
    }
    if (gpu) ++gpus;
  }

  Availability out;
  const std::size_t readable = sensors_.size() - read_errors.size();
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

Sample HwmonSource::sample() {
  if (!probed_) (void)probe();
  Sample out;
  out.readings.reserve(sensors_.size());
  for (auto& s : sensors_) {
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

std::unique_ptr<EnergySource> make_hwmon_source(const HostPaths& paths) {
  return std::make_unique<HwmonSource>(paths);
}

}  // namespace wattprobe
