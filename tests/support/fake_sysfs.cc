#include "tests/support/fake_sysfs.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

namespace wattprobe::testing {

namespace fs = std::filesystem;

namespace {

FakeZone zone(std::string key, std::string name, uint64_t energy_uj,
              uint64_t max = kIntelMaxEnergyRangeUj) {
  return FakeZone{std::move(key), std::move(name), energy_uj, max, true};
}

std::string parent_key(std::string_view key) {
  auto colon = key.rfind(':');
  return std::string(key.substr(0, colon));
}

// "intel-rapl:0:1" → "intel-rapl"
std::string control_type_of(std::string_view key) {
  return std::string(key.substr(0, key.find(':')));
}

int depth(std::string_view key) {
  int n = 0;
  for (char c : key) n += c == ':';
  return n;
}

bool is_package(std::string_view name) { return name.rfind("package-", 0) == 0; }

}  // namespace

PowercapScenario one_socket() {
  PowercapScenario s;
  s.name = "one_socket";
  s.zones = {zone("intel-rapl:0", "package-0", 81234567890),
             zone("intel-rapl:0:0", "core", 41234567), zone("intel-rapl:0:1", "uncore", 1234567)};
  s.with_mmio_duplicate = true;
  return s;
}

PowercapScenario two_socket_with_dram() {
  PowercapScenario s;
  s.name = "two_socket_with_dram";
  s.zones = {
      zone("intel-rapl:0", "package-0", 200000000000), zone("intel-rapl:0:0", "dram", 7000000),
      zone("intel-rapl:1", "package-1", 12345678901), zone("intel-rapl:1:0", "dram", 8000000)};
  return s;
}

PowercapScenario amd_zen() {
  PowercapScenario s;
  s.name = "amd_zen";
  s.zones = {zone("intel-rapl:0", "package-0", 60000000000, kEpycMaxEnergyRangeUj),
             zone("intel-rapl:0:0", "core", 30000000000, kEpycMaxEnergyRangeUj)};
  return s;
}

PowercapScenario disabled_zone() {
  PowercapScenario s = one_socket();
  s.name = "disabled_zone";
  s.zones[1].enabled = false;
  return s;
}

PowercapScenario psys_platform() {
  PowercapScenario s = one_socket();
  s.name = "psys_platform";
  s.zones.push_back(zone("intel-rapl:1", "psys", 99000000000));
  return s;
}

std::optional<PowercapScenario> powercap_scenario(std::string_view name) {
  if (name == "one_socket") return one_socket();
  if (name == "two_socket_with_dram") return two_socket_with_dram();
  if (name == "amd_zen") return amd_zen();
  if (name == "disabled_zone") return disabled_zone();
  if (name == "psys_platform") return psys_platform();
  return std::nullopt;
}

fs::path SysfsWriter::path(std::string_view rel) const {
  return root_ / fs::path(rel).relative_path();
}

void SysfsWriter::write(std::string_view rel, std::string_view contents) const {
  write_file_in_place(path(rel), contents);
}

void SysfsWriter::write_u64(std::string_view rel, uint64_t value) const {
  write(rel, std::to_string(value) + "\n");
}

void SysfsWriter::symlink(std::string_view target, std::string_view rel) const {
  fs::path link = path(rel);
  fs::create_directories(link.parent_path());
  std::error_code ec;
  fs::remove(link, ec);
  fs::create_symlink(fs::path(target), link);
}

void SysfsWriter::chmod(std::string_view rel, fs::perms perms) const {
  fs::permissions(path(rel), perms);
}

std::string powercap_file(std::string_view key, std::string_view file) {
  return "sys/class/powercap/" + std::string(key) + "/" + std::string(file);
}

std::string powercap_device_dir(std::string_view key) {
  // Each zone's folder sits inside its parent's: intel-rapl/intel-rapl:0/intel-rapl:0:1.
  std::string dir;
  std::string k(key);
  while (depth(k) >= 1) {
    dir = "/" + k + dir;
    k = parent_key(k);
  }
  return "sys/devices/virtual/powercap/" + control_type_of(key) + dir;
}

namespace {

// energy_uj as wide as the largest value, leading spaces (which readers trim) filling the rest:
// every rewrite has the same length, one write a concurrent reader never sees half of.
std::string energy_text(const FakeZone& z) {
  std::string text = std::to_string(z.energy_uj);
  const std::size_t width = std::to_string(z.max_energy_range_uj).size();
  if (text.size() < width) text.insert(0, width - text.size(), ' ');
  return text + "\n";
}

void write_zone(const SysfsWriter& out, const FakeZone& z) {
  const std::string dir = powercap_device_dir(z.key);
  out.write(dir + "/name", z.name + "\n");
  out.write_u64(dir + "/max_energy_range_uj", z.max_energy_range_uj);
  out.write(dir + "/enabled", z.enabled ? "1\n" : "0\n");
  out.write(dir + "/uevent", "");
  // Capping limits, which a meter must ignore; only packages and psys have the two constraints.
  const bool two = is_package(z.name) || z.name == "psys";
  out.write(dir + "/constraint_0_name", "long_term\n");
  out.write(dir + "/constraint_0_power_limit_uw", "28000000\n");
  out.write(dir + "/constraint_0_time_window_us", "27983872\n");
  if (two) {
    out.write(dir + "/constraint_0_max_power_uw", "15000000\n");
    out.write(dir + "/constraint_1_name", "short_term\n");
    out.write(dir + "/constraint_1_power_limit_uw", "64000000\n");
    out.write(dir + "/constraint_1_time_window_us", "2440\n");
    out.write(dir + "/constraint_1_max_power_uw", "0\n");
  }
  // Read-only attributes are 0444 in powercap_sys.c; limits and `enabled` are writable (0644).
  for (const char* ro : {"name", "max_energy_range_uj", "constraint_0_name"})
    out.chmod(dir + "/" + ro, fs::perms(0444));
  if (two) {
    for (const char* ro :
         {"constraint_0_max_power_uw", "constraint_1_name", "constraint_1_max_power_uw"})
      out.chmod(dir + "/" + ro, fs::perms(0444));
  }
  out.write(dir + "/energy_uj", energy_text(z));
  // energy_uj is 0400 since commit 949dd0104c49 (PLATYPUS, CVE-2020-8694).
  out.chmod(dir + "/energy_uj", fs::perms::owner_read);
  out.symlink("../../devices/virtual/powercap/" +
                  dir.substr(std::string("sys/devices/virtual/powercap/").size()),
              "sys/class/powercap/" + z.key);
}

}  // namespace

void write_powercap(const SysfsWriter& out, const PowercapScenario& scenario) {
  std::vector<std::string> types;
  for (const auto& z : scenario.zones) {
    std::string t = control_type_of(z.key);
    if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
  }
  if (scenario.with_mmio_duplicate) types.push_back("intel-rapl-mmio");
  for (const auto& t : types) {
    const std::string dir = "sys/devices/virtual/powercap/" + t;
    out.write(dir + "/enabled", scenario.control_type_enabled ? "1\n" : "0\n");
    out.write(dir + "/uevent", "");
    out.symlink("../../devices/virtual/powercap/" + t, "sys/class/powercap/" + t);
  }
  for (const auto& z : scenario.zones) write_zone(out, z);
  if (scenario.with_mmio_duplicate) {
    for (const auto& z : scenario.zones) {
      if (z.key != "intel-rapl:0") continue;
      FakeZone mmio = z;
      mmio.key = "intel-rapl-mmio:0";
      write_zone(out, mmio);
    }
  }
}

HwmonScenario hwmon_acpi_power_meter() {
  HwmonScenario s;
  s.chips.push_back(FakeHwmonChip{0,
                                  "acpitz",
                                  "devices/virtual/thermal/thermal_zone0",
                                  {{"temp1_input", "27800\n"}, {"temp1_crit", "105000\n"}}});
  s.chips.push_back(FakeHwmonChip{1,
                                  "power_meter",
                                  "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI000D:00",
                                  {{"power1_average", "182500000\n"},
                                   {"power1_average_interval", "1000\n"},
                                   {"power1_average_interval_min", "1000\n"},
                                   {"power1_average_interval_max", "3600000\n"},
                                   {"power1_accuracy", "95.0%\n"},
                                   {"power1_is_battery", "0\n"},
                                   {"power1_model_number", "PowerMeter\n"},
                                   {"power1_oem_info", "\n"},
                                   {"power1_serial_number", "\n"}}});
  return s;
}

HwmonScenario hwmon_amd_energy() {
  HwmonScenario s;
  FakeHwmonChip chip{2, "amd_energy", "devices/platform/amd_energy.0", {}};
  const uint64_t core_uj[] = {1000000001, 1000000002, 1000000003, 1000000004};
  for (int i = 0; i < 4; ++i) {
    char label[16];
    std::snprintf(label, sizeof label, "Ecore%03d", i);
    chip.files.emplace_back("energy" + std::to_string(i + 1) + "_input",
                            std::to_string(core_uj[i]) + "\n");
    chip.files.emplace_back("energy" + std::to_string(i + 1) + "_label", std::string(label) + "\n");
  }
  chip.files.emplace_back("energy5_input", "70000000000123\n");
  chip.files.emplace_back("energy5_label", "Esocket0\n");
  chip.files.emplace_back("energy6_input", "70000000000456\n");
  chip.files.emplace_back("energy6_label", "Esocket1\n");
  s.chips.push_back(std::move(chip));
  s.chips.push_back(FakeHwmonChip{3,
                                  "k10temp",
                                  "devices/pci0000:00/0000:00:18.3",
                                  {{"temp1_input", "45125\n"}, {"temp1_label", "Tctl\n"}}});
  return s;
}

HwmonScenario hwmon_amdgpu() {
  HwmonScenario s;
  s.chips.push_back(FakeHwmonChip{5,
                                  "amdgpu",
                                  "devices/pci0000:00/0000:03:00.0",
                                  {{"power1_average", "35000000\n"},
                                   {"power1_label", "PPT\n"},
                                   {"power1_cap", "203000000\n"},
                                   {"power1_cap_default", "203000000\n"},
                                   {"power1_cap_min", "0\n"},
                                   {"power1_cap_max", "241000000\n"}}});
  return s;
}

std::string hwmon_file(int index, std::string_view file) {
  return "sys/class/hwmon/hwmon" + std::to_string(index) + "/" + std::string(file);
}

void write_hwmon(const SysfsWriter& out, const HwmonScenario& scenario) {
  for (const auto& chip : scenario.chips) {
    const std::string hwmon = "hwmon" + std::to_string(chip.index);
    const std::string dir = "sys/" + chip.device_dir + "/hwmon/" + hwmon;
    out.write(dir + "/name", chip.name + "\n");
    out.write(dir + "/uevent", "");
    for (const auto& [file, contents] : chip.files) out.write(dir + "/" + file, contents);
    out.symlink("../../../" + fs::path(chip.device_dir).filename().string(), dir + "/device");
    out.symlink("../../" + chip.device_dir + "/hwmon/" + hwmon, "sys/class/hwmon/" + hwmon);
  }
}

std::string fake_zone_domain(std::string_view name) {
  if (is_package(name)) return "package";
  return std::string(name);
}

PowercapDriver::PowercapDriver(SysfsWriter out, PowercapScenario scenario)
    : out_(std::move(out)), scenario_(std::move(scenario)) {
  // A scenario given a smaller range (to wrap often) must still start inside it.
  for (auto& z : scenario_.zones) {
    if (z.max_energy_range_uj == 0) throw std::invalid_argument(z.key + ": max_energy_range_uj 0");
    z.energy_uj %= z.max_energy_range_uj;
  }
  write_powercap(out_, scenario_);
  for (const auto& z : scenario_.zones) state_[z.key] = ZoneState{};
}

const FakeZone* PowercapDriver::zone(std::string_view key) const {
  for (const auto& z : scenario_.zones)
    if (z.key == key) return &z;
  return nullptr;
}

int PowercapDriver::set_domain_watts(std::string_view domain, double watts) {
  int n = 0;
  for (const auto& z : scenario_.zones) {
    if (fake_zone_domain(z.name) != domain) continue;
    state_[z.key].watts = watts;
    ++n;
  }
  return n;
}

void PowercapDriver::set_zone_watts(std::string_view key, double watts) {
  auto it = state_.find(key);
  if (it == state_.end()) throw std::invalid_argument("no zone " + std::string(key));
  it->second.watts = watts;
}

void PowercapDriver::set_zone_held(std::string_view key, bool held) {
  auto it = state_.find(key);
  if (it == state_.end()) throw std::invalid_argument("no zone " + std::string(key));
  it->second.held = held;
  it->second.carry_uj = 0;
}

void PowercapDriver::advance(double seconds) {
  for (auto& z : scenario_.zones) {
    ZoneState& st = state_[z.key];
    if (st.held) continue;
    double exact = st.watts * seconds * 1e6 + st.carry_uj;
    if (exact < 0) exact = 0;
    // Snap values a rounding error away from a whole µJ (42.5 W × 0.7 s) so the added energy is
    // the exact product a test computes by hand.
    const double nearest = std::round(exact);
    const auto add =
        static_cast<uint64_t>(std::fabs(exact - nearest) < 1e-6 ? nearest : std::floor(exact));
    st.carry_uj = std::max(0.0, exact - static_cast<double>(add));
    st.added_uj += add;
    // The register wraps to 0 after max_energy_range_uj; the modulus readers use is the range.
    z.energy_uj =
        (z.energy_uj % z.max_energy_range_uj + add % z.max_energy_range_uj) % z.max_energy_range_uj;
    const std::string file = powercap_device_dir(z.key) + "/energy_uj";
    if (!fs::exists(out_.path(file).parent_path())) continue;
    out_.write(file, energy_text(z));
  }
}

uint64_t PowercapDriver::added_uj(std::string_view key) const {
  auto it = state_.find(key);
  return it == state_.end() ? 0 : it->second.added_uj;
}

double PowercapDriver::added_joules(std::string_view key) const {
  return static_cast<double>(added_uj(key)) * 1e-6;
}

uint64_t PowercapDriver::energy_uj(std::string_view key) const {
  const FakeZone* z = zone(key);
  return z ? z->energy_uj : 0;
}

double PowercapDriver::watts(std::string_view key) const {
  auto it = state_.find(key);
  return it == state_.end() ? 0 : it->second.watts;
}

}  // namespace wattprobe::testing
