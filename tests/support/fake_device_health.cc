#include "tests/support/fake_device_health.h"

#include <string>

namespace wattprobe::testing {

namespace {

void supply(const SysfsWriter& out, const std::string& name,
            const std::vector<std::pair<std::string, std::string>>& files) {
  // The kernel's real folder is under the ACPI device; class/power_supply links to it.
  const std::string dir = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/" + name;
  for (const auto& [file, contents] : files) out.write(dir + "/" + file, contents);
  out.symlink("../../devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/" + name,
              "sys/class/power_supply/" + name);
}

}  // namespace

void write_laptop_batteries(const SysfsWriter& out) {
  supply(out, "AC", {{"type", "Mains\n"}, {"online", "0\n"}});
  supply(out, "BAT0",
         {{"type", "Battery\n"},
          {"status", "Discharging\n"},
          {"present", "1\n"},
          {"technology", "Li-ion\n"},
          {"energy_full", "41800000\n"},
          {"energy_full_design", "50000000\n"},
          {"energy_now", "30000000\n"},
          {"power_now", "9500000\n"},
          {"voltage_now", "12100000\n"},
          {"cycle_count", "312\n"},
          {"capacity", "71\n"}});
  supply(out, "BAT1",
         {{"type", "Battery\n"},
          {"status", "Discharging\n"},
          {"present", "1\n"},
          {"charge_full", "3000000\n"},
          {"charge_full_design", "4000000\n"},
          {"charge_now", "2500000\n"},
          {"current_now", "1200000\n"},
          {"voltage_now", "11400000\n"},
          {"cycle_count", "57\n"},
          {"capacity", "83\n"}});
}

void write_malformed_batteries(const SysfsWriter& out) {
  supply(out, "BAT0", {{"type", "Battery\n"}, {"status", "Full\n"}, {"energy_full", "41800000\n"}});
  supply(out, "BAT1",
         {{"type", "Battery\n"},
          {"status", "Unknown\n"},
          {"charge_full", "3000000\n"},
          {"charge_full_design", "0\n"}});
  supply(out, "BAT2",
         {{"type", "Battery\n"},
          {"status", "Discharging\n"},
          {"energy_full", "garbage\n"},
          {"energy_full_design", "50000000\n"},
          {"cycle_count", "-1x\n"}});
}

void write_throttle_counters(const SysfsWriter& out) {
  const uint64_t core[] = {3, 5, 0, 7};
  const uint64_t package[] = {11, 2};
  for (int cpu = 0; cpu < 4; ++cpu) {
    const std::string dir = "sys/devices/system/cpu/cpu" + std::to_string(cpu);
    const int pkg = cpu / 2;
    out.write_u64(dir + "/topology/physical_package_id", pkg);
    out.write_u64(dir + "/thermal_throttle/core_throttle_count", core[cpu]);
    out.write_u64(dir + "/thermal_throttle/package_throttle_count", package[pkg]);
    out.write_u64(dir + "/thermal_throttle/core_throttle_max_time_ms", 40);
    out.write_u64(dir + "/thermal_throttle/package_throttle_total_time_ms", 900);
  }
}

void write_temperatures(const SysfsWriter& out) {
  HwmonScenario s;
  s.chips.push_back(FakeHwmonChip{3,
                                  "coretemp",
                                  "devices/platform/coretemp.0",
                                  {{"temp1_input", "71000\n"},
                                   {"temp1_label", "Package id 0\n"},
                                   {"temp2_input", "65000\n"},
                                   {"temp2_label", "Core 0\n"},
                                   {"temp1_crit", "100000\n"}}});
  s.chips.push_back(FakeHwmonChip{4,
                                  "nvme",
                                  "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
                                  {{"temp1_input", "45850\n"}, {"temp1_label", "Composite\n"}}});
  write_hwmon(out, s);
  out.write("sys/devices/virtual/thermal/thermal_zone0/type", "acpitz\n");
  out.write("sys/devices/virtual/thermal/thermal_zone0/temp", "52000\n");
  out.symlink("../../devices/virtual/thermal/thermal_zone0", "sys/class/thermal/thermal_zone0");
}

namespace {

FakeHwmonChip ina3221(const char* first_label) {
  return FakeHwmonChip{0,
                       "ina3221",
                       "devices/platform/bus@0/c240000.i2c/i2c-1/1-0040",
                       {{"in1_label", std::string(first_label) + "\n"},
                        {"in1_input", "19000\n"},
                        {"curr1_input", "500\n"},
                        {"in2_label", "VDD_CPU_GPU_CV\n"},
                        {"in2_input", "19000\n"},
                        {"curr2_input", "150\n"},
                        {"in3_label", "VDD_SOC\n"},
                        {"in3_input", "19000\n"},
                        {"curr3_input", "100\n"},
                        {"in4_input", "20\n"},
                        {"in5_input", "6\n"},
                        {"in6_input", "4\n"},
                        {"curr1_crit", "1000\n"},
                        {"update_interval", "1000\n"}}};
}

}  // namespace

HwmonScenario hwmon_ina3221_jetson() { return HwmonScenario{{ina3221("VDD_IN")}}; }

HwmonScenario hwmon_ina3221_without_input() { return HwmonScenario{{ina3221("VDD_GPU")}}; }

void write_storage(const SysfsWriter& out) {
  const std::string nvme = "sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0";
  out.write(nvme + "/model", "Fixture NVMe 1TB                        \n");
  out.write(nvme + "/dev", "259:0\n");
  out.symlink("../../devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0",
              "sys/class/nvme/nvme0");
  out.write("dev/nvme0", "");
  out.write("sys/block/sda/queue/rotational", "0\n");
  out.write("sys/block/sda/device/model", "Fixture SATA SSD\n");
}

bool write_device_health_scenario(const SysfsWriter& out, std::string_view name) {
  if (name == "laptop") {
    write_laptop_batteries(out);
  } else if (name == "malformed") {
    write_malformed_batteries(out);
  } else if (name == "throttle") {
    write_throttle_counters(out);
  } else if (name == "temperatures") {
    write_temperatures(out);
  } else if (name == "ina3221") {
    write_hwmon(out, hwmon_ina3221_jetson());
  } else if (name == "ina3221_no_input") {
    write_hwmon(out, hwmon_ina3221_without_input());
  } else if (name == "storage") {
    write_storage(out);
  } else if (name == "none") {
    supply(out, "AC", {{"type", "Mains\n"}, {"online", "1\n"}});
  } else {
    return false;
  }
  return true;
}

}  // namespace wattprobe::testing
