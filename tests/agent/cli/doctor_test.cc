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

// An amdgpu power sensor is split by the DRM busy time of the processes holding a client of its
// PCI device: doctor says how many do now, and that without one the dynamic energy is
// unattributed, instead of leaving the workloads' missing GPU energy a puzzle.
TEST(Doctor, AnHwmonGpuIsSplitByDrmBusyTimeAndDoctorCountsItsClients) {
  TempTree tree;
  testing::HwmonScenario scenario;
  scenario.chips.push_back({5,
                            "amdgpu",
                            "devices/pci0000:00/0000:03:00.0",
                            {{"power1_average", "35000000\n"}, {"power1_label", "PPT\n"}}});
  testing::write_hwmon(SysfsWriter(tree), scenario);
  TempTree procfs;
  std::string out =
      doctor("--sysfs-root " + tree.root().string() + " --procfs-root " + procfs.root().string() +
             " --nvml-library /nonexistent/libnvidia-ml.so.1");
  auto at = out.find(
      "GPUs (hwmon):\n  amdgpu/power1 (PPT), GPU 0: energy measured; split by process: DRM busy "
      "time of 0000:03:00.0");
  ASSERT_NE(at, std::string::npos) << out;
  std::string line = out.substr(at, out.find('\n', out.find("(PPT)")) - at);
  EXPECT_NE(line.find("no process holds a DRM client of it now"), std::string::npos) << line;
  EXPECT_NE(line.find("unattributed until one does, never split by CPU time"), std::string::npos)
      << line;

  // Two processes open it (one of them twice, and one file elsewhere that is not a GPU's).
  SysfsWriter proc(procfs);
  const std::string info =
      "drm-driver:\tamdgpu\ndrm-pdev:\t0000:03:00.0\ndrm-client-id:\t7\n"
      "drm-engine-gfx:\t100 ns\n";
  for (const char* fd : {"proc/300/fd/4", "proc/300/fd/5", "proc/301/fd/4"}) {
    std::filesystem::create_directories(procfs.root() / std::filesystem::path(fd).parent_path());
    std::filesystem::create_symlink("/dev/dri/renderD128", procfs.root() / fd);
    std::string infopath = fd;
    infopath.replace(infopath.find("/fd/"), 4, "/fdinfo/");
    proc.write(infopath, info);
  }
  out = doctor("--sysfs-root " + tree.root().string() + " --procfs-root " + procfs.root().string() +
               " --nvml-library /nonexistent/libnvidia-ml.so.1");
  EXPECT_NE(out.find("2 processes hold a DRM client of it now"), std::string::npos) << out;
}

TEST(Doctor, NoHwmonGpuNoHwmonGpuSection) {
  TempTree tree;
  testing::write_hwmon(SysfsWriter(tree), testing::hwmon_acpi_power_meter());
  std::string out = doctor("--sysfs-root " + tree.root().string() +
                           " --nvml-library /nonexistent/libnvidia-ml.so.1");
  ASSERT_NE(out.find("Carbon:"), std::string::npos) << "doctor ran to the end:\n" << out;
  EXPECT_EQ(out.find("GPUs (hwmon)"), std::string::npos) << out;
}

// Each [unit.NAME] is read once: doctor shows what the counter holds, or why it cannot be read,
// before run divides energy by it.
TEST(Doctor, EachUnitIsReadOnceWithWhatItHoldsOrWhyNot) {
  TempTree tree;
  tree.write("units/jobs.prom",
             "# TYPE jobs_total counter\njobs_total{q=\"a\"} 5\njobs_total{q=\"b\"} 7\n");
  tree.write("wattprobe.conf", "[unit.jobs]\nurl = " + tree.path("units/jobs.prom").string() +
                                   "\ncounter = jobs_total\nworkload = batch-*\n"
                                   "[unit.gone]\nurl = " +
                                   tree.path("units/none.prom").string() +
                                   "\ncounter = jobs_total\nworkload = batch-*\n");
  std::string out = doctor("--config " + tree.path("wattprobe.conf").string() +
                           " --nvml-library /nonexistent/libnvidia-ml.so.1");
  EXPECT_NE(out.find("Units of work ([unit.NAME], --unit-window 60 s):"), std::string::npos) << out;
  EXPECT_NE(out.find("jobs: jobs_total at " + tree.path("units/jobs.prom").string() +
                     ", workload \"batch-*\"\n      reads 2 series summing to 12\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("gone: jobs_total"), std::string::npos) << out;
  EXPECT_NE(out.find("cannot read it (unreachable): " + tree.path("units/none.prom").string()),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace wattprobe
