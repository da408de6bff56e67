#include "agent/cli/doctor.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::SysfsWriter;
using testing::TempTree;

/// `wattprobe doctor ARGS` through the real binary, as a user runs it: its standard output.
std::string doctor(const std::string& args) {
  std::string command = std::string(WATTPROBE_BIN) + " doctor " + args + " 2>/dev/null";
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return {};
  std::string out;
  std::array<char, 4096> buf{};
  for (std::size_t n; (n = std::fread(buf.data(), 1, buf.size(), p)) > 0;)
    out.append(buf.data(), n);
  ::pclose(p);
  return out;
}

// An amdgpu power sensor measures the GPU but names no process: doctor says the GPU's dynamic
// energy is unattributed and why, instead of leaving the workloads' missing GPU energy a puzzle.
TEST(Doctor, AnHwmonGpuWithoutAPerProcessSignalIsUnattributedAndDoctorSaysWhy) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back({5,
                            "amdgpu",
                            "devices/pci0000:00/0000:03:00.0",
                            {{"power1_average", "35000000\n"}, {"power1_label", "PPT\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  std::string out = doctor("--sysfs-root " + tree.root().string() +
                           " --nvml-library /nonexistent/libnvidia-ml.so.1");
  auto at = out.find(
      "GPUs (hwmon):\n  amdgpu/power1 (PPT): energy measured; split by process: "
      "none");
  ASSERT_NE(at, std::string::npos) << out;
  std::string line = out.substr(at, out.find('\n', out.find("(PPT)")) - at);
  EXPECT_NE(line.find("DRM fdinfo"), std::string::npos) << line;
  EXPECT_NE(line.find("unattributed, never split by CPU time"), std::string::npos) << line;
}

TEST(Doctor, NoHwmonGpuNoHwmonGpuSection) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_acpi_power_meter());
  std::string out = doctor("--sysfs-root " + tree.root().string() +
                           " --nvml-library /nonexistent/libnvidia-ml.so.1");
  ASSERT_NE(out.find("Carbon:"), std::string::npos) << "doctor ran to the end:\n" << out;
  EXPECT_EQ(out.find("GPUs (hwmon)"), std::string::npos) << out;
}

}  // namespace
}  // namespace wattprobe
