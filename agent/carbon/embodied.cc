#include "agent/carbon/embodied.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <set>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace fs = std::filesystem;

namespace {

std::string read_line(const fs::path& p, std::vector<Error>& problems) {
  auto t = read_text(p, 4096);
  if (!t) {
    problems.push_back(t.error());
    return {};
  }
  return std::string(trim(*t));
}

void read_cpuinfo(const HostPaths& paths, DeviceInventory& inv) {
  fs::path p = paths.proc("cpuinfo");
  auto text = read_text(p, 4u << 20);
  if (!text) {
    inv.problems.push_back(text.error());
    inv.sockets = 1;
    return;
  }
  std::set<std::string> ids;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = trim(line.substr(0, colon));
    std::string_view value = trim(line.substr(colon + 1));
    if (key == "model name" && inv.cpu_model.empty()) inv.cpu_model = value;
    if (key == "physical id") ids.emplace(value);
  }
  // Many VMs print no physical id; one socket is then the honest minimum.
  inv.sockets = std::max<int>(1, static_cast<int>(ids.size()));
}

void read_meminfo(const HostPaths& paths, DeviceInventory& inv) {
  fs::path p = paths.proc("meminfo");
  auto text = read_text(p, 1u << 20);
  if (!text) {
    inv.problems.push_back(text.error());
    return;
  }
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.substr(0, 9) != "MemTotal:") continue;
    std::string_view v = trim(line.substr(9));
    if (v.size() < 3 || v.substr(v.size() - 3) != " kB") {
      inv.problems.push_back({ErrorKind::malformed, p.string(),
                              "MemTotal " + quote_for_error(v) + " is not \"<n> kB\""});
      return;
    }
    auto kb = parse_u64(v.substr(0, v.size() - 3), p);
    if (!kb) {
      inv.problems.push_back(kb.error());
      return;
    }
    inv.memory_bytes = *kb * 1024;
    return;
  }
  inv.problems.push_back({ErrorKind::malformed, p.string(), "no MemTotal line"});
}

bool virtual_block_device(const std::string& name) {
  for (const char* prefix : {"loop", "ram", "dm-", "zram", "md", "nbd", "sr"}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

void read_disks(const HostPaths& paths, DeviceInventory& inv) {
  fs::path block = paths.sys("block");
  std::error_code ec;
  fs::directory_iterator it(block, ec);
  if (ec) {
    inv.problems.push_back(error_from_errno(ec.value(), block.string(), "list"));
    return;
  }
  std::vector<std::string> names;
  for (const auto& e : it) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (virtual_block_device(name)) continue;
    auto rot = read_u64(block / name / "queue" / "rotational");
    if (!rot) {
      inv.problems.push_back(rot.error());
      continue;
    }
    (*rot ? inv.hdds : inv.ssds).push_back(name);
  }
}

void read_gpus(const HostPaths& paths, DeviceInventory& inv) {
  fs::path devices = paths.sys("bus/pci/devices");
  std::error_code ec;
  fs::directory_iterator it(devices, ec);
  if (ec) {
    // A host without PCI (some VMs, containers without /sys/bus) simply has no GPU to count.
    if (ec != std::errc::no_such_file_or_directory) {
      inv.problems.push_back(error_from_errno(ec.value(), devices.string(), "list"));
    }
    return;
  }
  std::vector<std::string> names;
  for (const auto& e : it) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    fs::path cls = devices / name / "class";
    auto text = read_text(cls, 64);
    if (!text) {
      inv.problems.push_back(text.error());
      continue;
    }
    std::string_view c = trim(*text);
    // PCI base class 0x03 = display controller (VGA, XGA, 3D); the kernel prints 0xCCSSPP.
    if (c.size() != 8 || c.substr(0, 2) != "0x") {
      inv.problems.push_back(
          {ErrorKind::malformed, cls.string(), quote_for_error(c) + " is not 0xCCSSPP"});
      continue;
    }
    if (c.substr(2, 2) == "03") inv.gpus.push_back(name);
  }
}

}  // namespace

DeviceInventory read_inventory(const HostPaths& paths) {
  DeviceInventory inv;
  inv.vendor = read_line(paths.sys("class/dmi/id/sys_vendor"), inv.problems);
  inv.product = read_line(paths.sys("class/dmi/id/product_name"), inv.problems);
  read_cpuinfo(paths, inv);
  read_meminfo(paths, inv);
  read_disks(paths, inv);
  read_gpus(paths, inv);
  return inv;
}

std::size_t counted_gpus(const DeviceInventory& inv, std::string_view* from) {
  if (inv.listed_gpus && *inv.listed_gpus > 0) {
    if (from) *from = "listed by the GPU sources";
    return static_cast<std::size_t>(*inv.listed_gpus);
  }
  if (from) *from = "pci display class";
  return inv.gpus.size();
}

EmbodiedBreakdown embodied_from_inventory(const DeviceInventory& inv, const EmbodiedTable& t,
                                          std::optional<double> total_kg_override) {
  EmbodiedBreakdown out;
  if (total_kg_override) {
    out.grams_by_component.emplace_back("declared", *total_kg_override * 1000);
  } else {
    double gb = static_cast<double>(inv.memory_bytes) / (1024.0 * 1024 * 1024);
    out.grams_by_component.emplace_back("base", t.base_kg * 1000);
    out.grams_by_component.emplace_back("memory",
                                        std::max(0.0, gb - 16) * t.memory_kg_per_gb_over_16 * 1000);
    out.grams_by_component.emplace_back("cpu",
                                        std::max(0, inv.sockets - 1) * t.extra_cpu_kg * 1000);
    out.grams_by_component.emplace_back("hdd", inv.hdds.size() * t.hdd_kg * 1000);
    out.grams_by_component.emplace_back("ssd", inv.ssds.size() * t.ssd_kg * 1000);
    out.grams_by_component.emplace_back("gpu",
                                        static_cast<double>(counted_gpus(inv)) * t.gpu_kg * 1000);
  }
  for (const auto& [c, g] : out.grams_by_component) out.total_grams += g;
  return out;
}

Longevity longevity(double total_grams, std::optional<int64_t> install_ms, double lifetime_years,
                    int64_t now_ms) {
  Longevity l;
  l.lifetime_seconds = lifetime_years * kSecondsPerYear;
  double rate = l.lifetime_seconds > 0 ? total_grams / l.lifetime_seconds : 0;
  l.grams_per_second = rate;
  if (install_ms) {
    double age = std::max<double>(0, (now_ms - *install_ms) / 1000.0);
    l.age_seconds = age;
    l.amortized_ratio = l.lifetime_seconds > 0 ? std::min(1.0, age / l.lifetime_seconds) : 1.0;
    // Past its lifetime the device is paid for: keeping it longer costs no more embodied carbon.
    if (age >= l.lifetime_seconds) l.grams_per_second = 0;
  }
  return l;
}

double amortized_grams(double total_grams, std::optional<int64_t> install_ms, double lifetime_years,
                       int64_t from_ms, int64_t to_ms) {
  double life_s = lifetime_years * kSecondsPerYear;
  if (life_s <= 0 || to_ms <= from_ms) return 0;
  double rate = total_grams / life_s;
  if (!install_ms) return rate * (to_ms - from_ms) / 1000.0;
  double start = static_cast<double>(*install_ms);
  double end = start + life_s * 1000;
  double lo = std::max<double>(from_ms, start);
  double hi = std::min<double>(to_ms, end);
  return hi > lo ? rate * (hi - lo) / 1000.0 : 0;
}

std::optional<int64_t> parse_install_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int y = 0, m = 0, d = 0;
  auto num = [&](size_t pos, size_t n, int& out) {
    auto [end, ec] = std::from_chars(s.data() + pos, s.data() + pos + n, out);
    return ec == std::errc() && end == s.data() + pos + n;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return std::nullopt;
  if (y < 1970 || m < 1 || m > 12 || d < 1) return std::nullopt;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (d > kDays[m - 1] || (m == 2 && d == 29 && !leap)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = m - 1;
  tm.tm_mday = d;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

}  // namespace wattprobe
