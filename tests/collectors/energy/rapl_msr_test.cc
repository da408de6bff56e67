#include "collectors/energy/rapl_msr.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <thread>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

// A fake /dev/cpu/N/msr: a sparse regular file whose 8 bytes at offset = the MSR address hold the
// register (little-endian, as the msr driver returns it). pread works on it exactly as on the
// device; bytes never written read as 0 and offsets past the end give a short read. Registers at
// adjacent addresses overlap in the file (the device has no such overlap): Intel's RAPL registers
// are 8 apart, AMD's are not (see the AMD test).
void write_msr(const testing::TempTree& tree, int cpu, uint32_t address, uint64_t value) {
  std::filesystem::path dev = tree.path("dev/cpu/" + std::to_string(cpu) + "/msr");
  std::filesystem::create_directories(dev.parent_path());
  int fd = ::open(dev.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + dev.string());
  ssize_t n = ::pwrite(fd, &value, sizeof value, static_cast<off_t>(address));
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof value)) throw std::runtime_error("short pwrite");
}

std::string cpuinfo(std::string_view vendor, int family, int model, int cpus) {
  std::string text;
  for (int cpu = 0; cpu < cpus; ++cpu) {
    text += "processor\t: " + std::to_string(cpu) + "\nvendor_id\t: " + std::string(vendor) +
            "\ncpu family\t: " + std::to_string(family) + "\nmodel\t\t: " + std::to_string(model) +
            "\nmodel name\t: Some CPU @ 2.00GHz\nstepping\t: 4\nflags\t\t: fpu vme msr\n\n";
  }
  return text;
}

// CPUs 0..cpus-1, alternating between `packages` packages (as BIOSes number two-socket hosts).
void topology(const testing::TempTree& tree, int cpus, int packages) {
  tree.write("sys/devices/system/cpu/online", "0-" + std::to_string(cpus - 1) + "\n");
  for (int cpu = 0; cpu < cpus; ++cpu) {
    tree.write("sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/physical_package_id",
               std::to_string(cpu % packages) + "\n");
  }
}

constexpr uint64_t kUnitEsu14 = 0xA0E03;  // power 1/8 W, energy 2^-14 J, time 2^-10 s
constexpr uint64_t kUnitEsu16 = 0xA1003;  // the common default: energy 2^-16 J = 15.3 µJ

// Two-socket Skylake-X (family 6 model 0x55): DRAM has the fixed 2^-16 J unit.
void two_socket_skylake_x(const testing::TempTree& tree) {
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x55, 4));
  topology(tree, 4, 2);
  for (int cpu : {0, 1}) {
    write_msr(tree, cpu, msr::kIntelPowerUnit, kUnitEsu14);
    // Bits 63:32 are reserved: junk there must not reach the reading.
    write_msr(tree, cpu, msr::kIntelPackageEnergy, 0xDEAD0000'FFFFFFF0ull);
    write_msr(tree, cpu, msr::kIntelPp0Energy, 500 + cpu);
    write_msr(tree, cpu, msr::kIntelDramEnergy, 1000 + cpu);
    write_msr(tree, cpu, msr::kIntelPlatformEnergy, 7000 + cpu);
  }
}

std::map<std::string, Reading> by_key(const Sample& s) {
  std::map<std::string, Reading> out;
  for (const Reading& r : s.readings) out[r.key] = r;
  return out;
}

TEST(RaplMsr, EnergyStatusUnitIsBits12To8) {
  EXPECT_EQ(energy_status_unit(kUnitEsu16), 16);
  EXPECT_EQ(energy_status_unit(kUnitEsu14), 14);
  EXPECT_EQ(energy_status_unit(0xFFFFFFFF'FFFFE0FFull), 0);
  EXPECT_EQ(energy_status_unit(0x1F00), 31);
  EXPECT_DOUBLE_EQ(std::ldexp(1.0, -energy_status_unit(kUnitEsu16)), 15.2587890625e-6);
}

TEST(RaplMsr, ParsesCpuinfo) {
  auto id = parse_cpuinfo(cpuinfo("GenuineIntel", 6, 85, 2), "/proc/cpuinfo");
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_EQ(id->vendor_id, "GenuineIntel");
  EXPECT_EQ(id->family, 6);
  EXPECT_EQ(id->model, 85);

  auto arm = parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n\n",
                           "/proc/cpuinfo");
  ASSERT_FALSE(arm.ok());
  EXPECT_EQ(arm.error().kind, ErrorKind::unsupported);

  auto bad = parse_cpuinfo("vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: x55\n",
                           "/proc/cpuinfo");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().kind, ErrorKind::malformed);
  EXPECT_NE(bad.error().message().find("x55"), std::string::npos);
}

TEST(RaplMsr, TwoSocketIntelReadsEachPackageOnceAndPsysOnce) {
  testing::TempTree tree;
  two_socket_skylake_x(tree);
  auto source = make_rapl_msr_source(tree.paths());
  EXPECT_EQ(source->name(), "rapl_msr");
  EXPECT_TRUE(source->measured());
  Availability a = source->probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("GenuineIntel family 6 model 0x55: 7 registers"), std::string::npos)
      << a.reason;
  // PP1 (client graphics) reads 0 on this server part: left out, and said so.
  EXPECT_NE(a.reason.find("gpu: register 0x641 reads 0"), std::string::npos) << a.reason;

  Sample s = source->sample();
  EXPECT_TRUE(s.errors.empty());
  auto r = by_key(s);
  ASSERT_EQ(r.size(), 7u);
  const Reading& pkg1 = r.at("package/cpu1");
  EXPECT_EQ(pkg1.domain, "package");
  EXPECT_EQ(pkg1.socket, 1);
  EXPECT_EQ(pkg1.kind, ReadingKind::energy_counter);
  EXPECT_EQ(pkg1.raw, 0xFFFFFFF0u);
  EXPECT_EQ(pkg1.modulus, uint64_t{1} << 32);
  EXPECT_DOUBLE_EQ(pkg1.unit_joules, std::ldexp(1.0, -14));
  EXPECT_EQ(r.at("core/cpu0").raw, 500u);
  EXPECT_EQ(r.at("core/cpu0").socket, 0);
  EXPECT_DOUBLE_EQ(r.at("core/cpu0").unit_joules, std::ldexp(1.0, -14));
  // Skylake-X DRAM counts 2^-16 J whatever the unit register says.
  EXPECT_EQ(r.at("dram/cpu1").raw, 1001u);
  EXPECT_DOUBLE_EQ(r.at("dram/cpu1").unit_joules, std::ldexp(1.0, -16));
  const Reading& psys = r.at("psys/cpu0");
  EXPECT_EQ(psys.socket, -1);
  EXPECT_EQ(psys.raw, 7000u);
  EXPECT_EQ(r.count("psys/cpu1"), 0u);
}

TEST(RaplMsr, CounterWrapsAt32Bits) {
  testing::TempTree tree;
  two_socket_skylake_x(tree);
  auto source = make_rapl_msr_source(tree.paths());
  ASSERT_TRUE(source->probe().available);
  EXPECT_EQ(by_key(source->sample()).at("package/cpu0").raw, 0xFFFFFFF0u);
  write_msr(tree, 0, msr::kIntelPackageEnergy, 0xDEAD0001'00000010ull);
  const Reading after = by_key(source->sample()).at("package/cpu0");
  EXPECT_EQ(after.raw, 0x10u);
  // What the agent's meter computes from these: 0x20 counts of 2^-14 J across the wrap.
  uint64_t delta = (after.raw + after.modulus - 0xFFFFFFF0u) % after.modulus;
  EXPECT_EQ(delta, 0x20u);
  EXPECT_DOUBLE_EQ(delta * after.unit_joules, 32.0 / 16384.0);
}

TEST(RaplMsr, ClientIntelDramUsesTheUnitRegister) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x9A, 2));  // Alder Lake-P
  topology(tree, 2, 1);
  write_msr(tree, 0, msr::kIntelPowerUnit, kUnitEsu14);
  write_msr(tree, 0, msr::kIntelPackageEnergy, 100);
  write_msr(tree, 0, msr::kIntelDramEnergy, 200);
  write_msr(tree, 0, msr::kIntelPp1Energy, 300);
  auto source = make_rapl_msr_source(tree.paths());
  ASSERT_TRUE(source->probe().available);
  auto r = by_key(source->sample());
  EXPECT_DOUBLE_EQ(r.at("dram/cpu0").unit_joules, std::ldexp(1.0, -14));
  EXPECT_EQ(r.at("gpu/cpu0").raw, 300u);
  EXPECT_EQ(r.count("psys/cpu0"), 0u);  // file ends before 0x64D: short read, not implemented
}

TEST(RaplMsr, SapphireRapidsPsysCountsWholeJoules) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x8F, 2));
  topology(tree, 2, 1);
  write_msr(tree, 0, msr::kIntelPowerUnit, kUnitEsu14);
  write_msr(tree, 0, msr::kIntelPackageEnergy, 100);
  write_msr(tree, 0, msr::kIntelDramEnergy, 200);
  write_msr(tree, 0, msr::kIntelPlatformEnergy, 42);
  auto source = make_rapl_msr_source(tree.paths());
  ASSERT_TRUE(source->probe().available);
  auto r = by_key(source->sample());
  EXPECT_DOUBLE_EQ(r.at("psys/cpu0").unit_joules, 1.0);
  EXPECT_DOUBLE_EQ(r.at("dram/cpu0").unit_joules, std::ldexp(1.0, -14));
}

TEST(RaplMsr, AmdReadsThePackageRegisterPerSocket) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("AuthenticAMD", 0x19, 0x01, 4));  // EPYC Milan
  topology(tree, 4, 2);
  // AMD's registers sit one address apart, so in a file they overlap. Writing the unit first and
  // the package last keeps what each read uses: the unit's bits 15:0 and the whole package value.
  for (int cpu : {0, 1}) {
    write_msr(tree, cpu, msr::kAmdPowerUnit, kUnitEsu16);
    write_msr(tree, cpu, msr::kAmdPackageEnergy, 0x80000000u + cpu);
  }
  auto source = make_rapl_msr_source(tree.paths());
  Availability a = source->probe();
  ASSERT_TRUE(a.available) << a.reason;
  auto r = by_key(source->sample());
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r.at("package/cpu0").raw, 0x80000000u);
  EXPECT_EQ(r.at("package/cpu1").raw, 0x80000001u);
  EXPECT_EQ(r.at("package/cpu1").socket, 1);
  EXPECT_DOUBLE_EQ(r.at("package/cpu1").unit_joules, 15.2587890625e-6);
}

TEST(RaplMsr, MissingRegisterIsUnsupportedOthersKept) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x55, 1));
  topology(tree, 1, 1);
  write_msr(tree, 0, msr::kIntelPowerUnit, kUnitEsu14);
  write_msr(tree, 0, msr::kIntelPackageEnergy, 123);  // the file ends at 0x619: no DRAM, no PP0

  int fd = ::open(tree.path("dev/cpu/0/msr").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto dram = read_msr(fd, msr::kIntelDramEnergy, "/dev/cpu/0/msr");
  ::close(fd);
  ASSERT_FALSE(dram.ok());
  EXPECT_EQ(dram.error().kind, ErrorKind::unsupported);
  EXPECT_NE(dram.error().detail.find("0x619 not implemented"), std::string::npos);

  auto source = make_rapl_msr_source(tree.paths());
  Availability a = source->probe();
  ASSERT_TRUE(a.available) << a.reason;
  EXPECT_NE(a.reason.find("dram: register 0x619 not implemented"), std::string::npos) << a.reason;
  Sample s = source->sample();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].key, "package/cpu0");
  EXPECT_EQ(s.readings[0].raw, 123u);
}

TEST(RaplMsr, UnitRegisterMissingAsInAVmIsUnavailable) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x55, 1));
  topology(tree, 1, 1);
  tree.write("dev/cpu/0/msr", "");
  auto source = make_rapl_msr_source(tree.paths());
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("0x606 not readable"), std::string::npos) << a.reason;
  EXPECT_TRUE(source->sample().readings.empty());
}

TEST(RaplMsr, NoMsrDeviceSaysModprobe) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("GenuineIntel", 6, 0x55, 1));
  topology(tree, 1, 1);
  auto source = make_rapl_msr_source(tree.paths());
  Availability a = source->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("dev/cpu/0/msr: absent"), std::string::npos) << a.reason;
  EXPECT_EQ(a.remedy, "modprobe msr (needs a kernel with CONFIG_X86_MSR)");
}

TEST(RaplMsr, UnknownVendorIsUnavailable) {
  testing::TempTree tree;
  tree.write("proc/cpuinfo", cpuinfo("CentaurHauls", 6, 0x0F, 1));
  topology(tree, 1, 1);
  Availability a = make_rapl_msr_source(tree.paths())->probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("CentaurHauls"), std::string::npos);
}

// Root ignores file modes, so the unprivileged case runs in a child that dropped to nobody.
TEST(RaplMsr, UnreadableDeviceNamesTheCapability) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to create a root-only device and drop to nobody";
  testing::TempTree tree;
  two_socket_skylake_x(tree);
  tree.chmod("", std::filesystem::perms(0755));
  for (const char* dir : {"dev", "dev/cpu", "dev/cpu/0", "dev/cpu/1", "proc", "sys"}) {
    tree.chmod(dir, std::filesystem::perms(0755));
  }
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(10);
    Availability a = make_rapl_msr_source(tree.paths())->probe();
    if (a.available) _exit(11);
    if (a.reason.find("permission") == std::string::npos) _exit(12);
    if (a.remedy.find("CAP_SYS_RAWIO") == std::string::npos) _exit(13);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setresuid, 11 available, 12 reason, 13 remedy";
}

TEST(RaplMsr, LiveMsrDevice) {
  HostPaths host;
  if (!std::filesystem::exists(host.dev("cpu/0/msr"))) {
    GTEST_SKIP() << "no " << host.dev("cpu/0/msr")
                 << ": msr driver not loaded (modprobe msr) or kernel without CONFIG_X86_MSR";
  }
  auto source = make_rapl_msr_source(host);
  Availability a = source->probe();
  if (!a.available) GTEST_SKIP() << "msr device present but RAPL unreadable: " << a.reason;
  Sample first = source->sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Sample second = source->sample();
  ASSERT_EQ(first.readings.size(), second.readings.size());
  for (std::size_t i = 0; i < first.readings.size(); ++i) {
    const Reading& r = second.readings[i];
    uint64_t delta = (r.raw + r.modulus - first.readings[i].raw) % r.modulus;
    EXPECT_LT(delta * r.unit_joules / 0.2, 2000) << r.key;
  }
}

}  // namespace
}  // namespace wattprobe
