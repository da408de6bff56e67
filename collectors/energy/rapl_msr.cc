#include "collectors/energy/rapl_msr.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>

#include "agent/base/text_file.h"
#include "collectors/cpu/cpu_topology.h"

namespace wattprobe {

namespace {

constexpr uint64_t kCounterModulus = uint64_t{1} << 32;

std::string hex(uint32_t address) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%X", address);
  return buf;
}

Result<int> cpuinfo_number(std::string_view value, std::string_view key,
                           const std::filesystem::path& path) {
  auto n = parse_u64(value, path);
  if (!n || *n > 0xffff) {
    return Error{ErrorKind::malformed, path.string(),
                 std::string(key) + " " + quote_for_error(value) + " is not a number"};
  }
  return static_cast<int>(*n);
}

bool model_in(int model, std::initializer_list<int> models) {
  for (int m : models)
    if (m == model) return true;
  return false;
}

}  // namespace

Result<CpuIdentity> parse_cpuinfo(std::string_view text, const std::filesystem::path& path) {
  std::string_view vendor, family, model;
  bool have_vendor = false, have_family = false, have_model = false;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (trim(line).empty()) {
      if (have_vendor || have_family || have_model) break;  // end of the first processor block
      continue;
    }
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "vendor_id" && !have_vendor) {
      vendor = value;
      have_vendor = true;
    } else if (key == "cpu family" && !have_family) {
      family = value;
      have_family = true;
    } else if (key == "model" && !have_model) {
      model = value;
      have_model = true;
    }
  }
  if (!have_vendor) {
    return Error{ErrorKind::unsupported, path.string(), "no vendor_id: not an x86 CPU"};
  }
  if (vendor.empty()) return Error{ErrorKind::malformed, path.string(), "empty vendor_id"};
  if (!have_family) return Error{ErrorKind::malformed, path.string(), "no \"cpu family\" line"};
  if (!have_model) return Error{ErrorKind::malformed, path.string(), "no \"model\" line"};
  auto f = cpuinfo_number(family, "cpu family", path);
  if (!f) return f.error();
  auto m = cpuinfo_number(model, "model", path);
  if (!m) return m.error();
  return CpuIdentity{std::string(vendor), *f, *m};
}

Result<CpuIdentity> read_cpu_identity(const HostPaths& paths) {
  std::filesystem::path path = paths.proc("cpuinfo");
  // About 1.5 KiB per CPU: room for thousands of CPUs.
  auto text = read_text(path, 16u << 20);
  if (!text) return text.error();
  return parse_cpuinfo(*text, path);
}

int energy_status_unit(uint64_t power_unit_register) {
  return static_cast<int>((power_unit_register >> 8) & 0x1f);
}

RaplMsrLayout rapl_msr_layout(const CpuIdentity& cpu) {
  RaplMsrLayout layout;
  if (cpu.vendor_id == "GenuineIntel") {
    const bool family6 = cpu.family == 6;
    // Haswell-EP, Broadwell-X, Broadwell-DE, Skylake-X, Icelake-X, Icelake-D, KNL, KNM.
    const bool dram_fixed =
        family6 && model_in(cpu.model, {0x3F, 0x4F, 0x56, 0x55, 0x6A, 0x6C, 0x57, 0x85});
    // Sapphire Rapids-X, Emerald Rapids-X.
    const bool psys_fixed = family6 && model_in(cpu.model, {0x8F, 0xCF});
    layout.power_unit = msr::kIntelPowerUnit;
    layout.domains = {
        {"package", msr::kIntelPackageEnergy, true, -1},
        {"core", msr::kIntelPp0Energy, true, -1},
        {"dram", msr::kIntelDramEnergy, true, dram_fixed ? 16 : -1},
        {"gpu", msr::kIntelPp1Energy, true, -1},
        {"psys", msr::kIntelPlatformEnergy, false, psys_fixed ? 0 : -1},
    };
  } else if (cpu.vendor_id == "AuthenticAMD" || cpu.vendor_id == "HygonGenuine") {
    layout.power_unit = msr::kAmdPowerUnit;
    layout.domains = {{"package", msr::kAmdPackageEnergy, true, -1}};
  }
  return layout;
}

Result<uint64_t> read_msr(int fd, uint32_t address, const std::string& path) {
  uint64_t value = 0;
  for (;;) {
    ssize_t n = ::pread(fd, &value, sizeof value, static_cast<off_t>(address));
    if (n == static_cast<ssize_t>(sizeof value)) return value;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EIO) return error_from_errno(errno, path, "pread " + hex(address));
    return Error{ErrorKind::unsupported, path,
                 "register " + hex(address) + " not implemented on this CPU (" +
                     (n < 0 ? std::string("EIO") : "short read of " + std::to_string(n)) + ")"};
  }
}

RaplMsrSource::RaplMsrSource(HostPaths paths) : paths_(std::move(paths)) {}

RaplMsrSource::~RaplMsrSource() { close_all(); }

void RaplMsrSource::close_all() {
  for (int fd : fds_) ::close(fd);
  fds_.clear();
  counters_.clear();
}

Availability RaplMsrSource::probe() {
  close_all();
  Availability a;

  auto cpu = read_cpu_identity(paths_);
  if (!cpu) {
    a.reason = cpu.error().message();
    return a;
  }
  RaplMsrLayout layout = rapl_msr_layout(*cpu);
  if (layout.domains.empty()) {
    a.reason = "vendor " + cpu->vendor_id + " has no RAPL MSRs this source knows";
    return a;
  }
  auto packages = first_cpu_per_package(paths_);
  if (!packages) {
    a.reason = packages.error().message();
    return a;
  }

  const std::string rawio_remedy =
      "needs CAP_SYS_RAWIO and read access to /dev/cpu/*/msr (run as root or grant the "
      "capability)";
  std::vector<Error> problems;
  bool psys_taken = false;
  for (const PackageCpu& package : *packages) {
    std::filesystem::path dev = paths_.dev("cpu/" + std::to_string(package.cpu) + "/msr");
    int fd = ::open(dev.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      Error e = error_from_errno(errno, dev.string(), "open");
      if (e.kind == ErrorKind::absent) {
        e.detail = "no msr device";
        a.remedy = "modprobe msr (needs a kernel with CONFIG_X86_MSR)";
      } else if (e.kind == ErrorKind::permission) {
        a.remedy = rawio_remedy;
      }
      problems.push_back(std::move(e));
      continue;
    }
    auto unit = read_msr(fd, layout.power_unit, dev.string());
    if (!unit) {
      if (unit.error().kind == ErrorKind::permission) a.remedy = rawio_remedy;
      Error e = unit.error();
      if (e.kind == ErrorKind::unsupported) {
        e.detail = "RAPL power unit register " + hex(layout.power_unit) +
                   " not readable (VMs usually do not pass RAPL MSRs through): " + e.detail;
      }
      problems.push_back(std::move(e));
      ::close(fd);
      continue;
    }
    const int esu = energy_status_unit(*unit);

    bool kept_any = false;
    for (const RaplMsrDomain& domain : layout.domains) {
      if (!domain.per_package && psys_taken) continue;
      auto value = read_msr(fd, domain.address, dev.string());
      if (!value) {
        Error e = value.error();
        e.detail = domain.domain + ": " + e.detail;
        problems.push_back(std::move(e));
        continue;
      }
      if ((*value & 0xffffffffu) == 0) {
        problems.push_back(Error{ErrorKind::unsupported, dev.string(),
                                 domain.domain + ": register " + hex(domain.address) +
                                     " reads 0 (not counting on this CPU)"});
        continue;
      }
      const int exponent = domain.fixed_unit_exponent >= 0 ? domain.fixed_unit_exponent : esu;
      if (!domain.per_package) psys_taken = true;
      counters_.push_back(Counter{fd, domain, domain.per_package ? package.package : -1,
                                  package.cpu, std::ldexp(1.0, -exponent), dev.string()});
      kept_any = true;
    }
    if (kept_any) {
      fds_.push_back(fd);
    } else {
      ::close(fd);
    }
  }

  if (counters_.empty()) {
    a.reason = problems.empty() ? "no RAPL register readable" : problems.front().message();
    if (problems.size() > 1) a.reason += " (and " + std::to_string(problems.size() - 1) + " more)";
    return a;
  }
  a.available = true;
  a.remedy.clear();
  a.reason = cpu->vendor_id + " family " + std::to_string(cpu->family) + " model " +
             hex(cpu->model) + ": " + std::to_string(counters_.size()) + " registers:";
  for (std::size_t i = 0; i < counters_.size(); ++i) {
    const Counter& c = counters_[i];
    a.reason += (i ? ", " : " ") + c.domain.domain + "@cpu" + std::to_string(c.cpu);
  }
  for (const Error& e : problems) a.reason += "; skipped " + e.message();
  return a;
}

Sample RaplMsrSource::sample() {
  Sample s;
  for (const Counter& c : counters_) {
    auto value = read_msr(c.fd, c.domain.address, c.path);
    if (!value) {
      s.errors.push_back(value.error());
      continue;
    }
    Reading r;
    r.domain = c.domain.domain;
    r.socket = c.socket;
    r.key = c.domain.domain + "/cpu" + std::to_string(c.cpu);
    r.kind = ReadingKind::energy_counter;
    r.raw = *value & 0xffffffffu;
    r.modulus = kCounterModulus;
    r.unit_joules = c.unit_joules;
    s.readings.push_back(std::move(r));
  }
  return s;
}

std::unique_ptr<EnergySource> make_rapl_msr_source(const HostPaths& paths) {
  return std::make_unique<RaplMsrSource>(paths);
}

}  // namespace wattprobe
