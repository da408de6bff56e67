#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// The first processor of /proc/cpuinfo: which RAPL registers exist and which unit quirks apply.
struct CpuIdentity {
  std::string vendor_id;  // GenuineIntel, AuthenticAMD, HygonGenuine
  int family = 0;         // "cpu family"
  int model = 0;          // "model"
};

/// Strict: vendor_id, cpu family and model of the first processor block. No vendor_id (not an
/// x86 host) is unsupported; a family or model that is not a number is malformed.
Result<CpuIdentity> parse_cpuinfo(std::string_view text, const std::filesystem::path& path);
Result<CpuIdentity> read_cpu_identity(const HostPaths& paths);

/// Register addresses (arch/x86/include/asm/msr-index.h).
namespace msr {
inline constexpr uint32_t kIntelPowerUnit = 0x606;         // MSR_RAPL_POWER_UNIT
inline constexpr uint32_t kIntelPackageEnergy = 0x611;     // MSR_PKG_ENERGY_STATUS
inline constexpr uint32_t kIntelDramEnergy = 0x619;        // MSR_DRAM_ENERGY_STATUS
inline constexpr uint32_t kIntelPp0Energy = 0x639;         // MSR_PP0_ENERGY_STATUS (cores)
inline constexpr uint32_t kIntelPp1Energy = 0x641;         // MSR_PP1_ENERGY_STATUS (client GPU)
inline constexpr uint32_t kIntelPlatformEnergy = 0x64D;    // MSR_PLATFORM_ENERGY_STATUS (psys)
inline constexpr uint32_t kAmdPowerUnit = 0xC0010299;      // MSR_AMD_RAPL_POWER_UNIT
inline constexpr uint32_t kAmdCoreEnergy = 0xC001029A;     // MSR_AMD_CORE_ENERGY_STATUS
inline constexpr uint32_t kAmdPackageEnergy = 0xC001029B;  // MSR_AMD_PKG_ENERGY_STATUS
}  // namespace msr

/// The energy status unit exponent: bits 12:8 of the power unit register (Intel SDM vol. 3B
/// 15.10.1; AMD uses the same layout). One count is 2^-ESU J.
int energy_status_unit(uint64_t power_unit_register);

/// One energy status register the source reads.
struct RaplMsrDomain {
  std::string domain;  // package, core, dram, gpu, psys
  uint32_t address = 0;
  bool per_package = true;  // false: read once for the platform (psys), reported with socket -1
  /// Exponent of this domain's unit when the CPU fixes it regardless of the unit register; -1 =
  /// use the register's ESU.
  int fixed_unit_exponent = -1;
};

/// The power unit register and the energy registers of this CPU, with unit quirks applied
/// (arch/x86/events/rapl.c, rapl_check_hw_unit): DRAM counts 2^-16 J on Haswell-EP, Broadwell-X,
/// Skylake-X, Icelake-X and Xeon Phi; psys counts 1 J on Sapphire and Emerald Rapids.
/// AMD and Hygon: package only (the core register is per physical core, and a per-socket reading
/// would need the sum over cores minus SMT siblings; the package register covers them).
/// Empty for a vendor without RAPL MSRs.
struct RaplMsrLayout {
  uint32_t power_unit = 0;
  std::vector<RaplMsrDomain> domains;
};
RaplMsrLayout rapl_msr_layout(const CpuIdentity& cpu);

/// 8-byte pread at offset = `address` on an open /dev/cpu/N/msr. The msr driver answers EIO for a
/// register the CPU does not implement; a short read (a fake device file that ends before the
/// offset) is treated the same: unsupported.
Result<uint64_t> read_msr(int fd, uint32_t address, const std::string& path);

/// `rapl_msr`: RAPL energy status registers read through the msr driver, one CPU per package.
/// Needs `modprobe msr`, CAP_SYS_RAWIO and read access to /dev/cpu/*/msr at probe(); the files
/// stay open, so reads keep working after the agent drops the capability. Readings are bits 31:0
/// of the register, modulus 2^32, unit 2^-ESU J (or the quirk's fixed unit).
class RaplMsrSource : public EnergySource {
 public:
  explicit RaplMsrSource(HostPaths paths);
  ~RaplMsrSource() override;
  RaplMsrSource(const RaplMsrSource&) = delete;
  RaplMsrSource& operator=(const RaplMsrSource&) = delete;

  std::string_view name() const override { return "rapl_msr"; }
  /// Opens the msr device of the first CPU of each package and keeps each register that reads
  /// non-zero (a register that reads 0 is not counting, as perf_msr_probe() in the kernel judges
  /// it); closes and reopens on a repeated call.
  Availability probe() override;
  /// One energy_counter Reading per register kept, key "<domain>/cpu<N>".
  Sample sample() override;

 private:
  struct Counter {
    int fd = -1;  // shared by the counters of one package; owned by fds_
    RaplMsrDomain domain;
    int socket = -1;
    int cpu = 0;
    double unit_joules = 0;
    std::string path;
  };
  void close_all();

  HostPaths paths_;
  std::vector<int> fds_;
  std::vector<Counter> counters_;
};

std::unique_ptr<EnergySource> make_rapl_msr_source(const HostPaths& paths);

}  // namespace wattprobe
