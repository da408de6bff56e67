#include "collectors/cpu/cpu_topology.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <string>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

// Far above any real CPU count (the kernel's NR_CPUS max is 8192), low enough that a hostile
// "0-4000000000" cannot make us allocate gigabytes.
constexpr int kMaxCpu = 1 << 16;

bool parse_cpu_number(std::string_view word, int& out) {
  if (word.empty() || word.front() < '0' || word.front() > '9') return false;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out);
  return ec == std::errc() && end == word.data() + word.size() && out <= kMaxCpu;
}

}  // namespace

Result<std::vector<int>> parse_cpu_list(std::string_view text, const std::filesystem::path& path) {
  std::string_view t = trim(text);
  std::vector<int> cpus;
  while (!t.empty()) {
    std::size_t comma = t.find(',');
    std::string_view item = t.substr(0, comma);
    t = comma == std::string_view::npos ? std::string_view{} : t.substr(comma + 1);
    if (comma != std::string_view::npos && t.empty()) item = {};  // trailing comma

    std::size_t dash = item.find('-');
    int first = 0;
    int last = 0;
    bool ok = dash == std::string_view::npos
                  ? parse_cpu_number(item, first) && ((last = first), true)
                  : parse_cpu_number(item.substr(0, dash), first) &&
                        parse_cpu_number(item.substr(dash + 1), last) && first <= last;
    if (!ok) {
      return Error{ErrorKind::malformed, path.string(),
                   quote_for_error(text) + " is not a CPU list like \"0-3,8\""};
    }
    for (int cpu = first; cpu <= last; ++cpu) cpus.push_back(cpu);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

Result<std::vector<int>> read_online_cpus(const HostPaths& paths) {
  std::filesystem::path path = paths.sys("devices/system/cpu/online");
  auto text = read_text(path);
  if (!text) return text.error();
  return parse_cpu_list(*text, path);
}

Result<int> read_package_of_cpu(const HostPaths& paths, int cpu) {
  std::filesystem::path path =
      paths.sys("devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/physical_package_id");
  auto text = read_text(path);
  if (!text) return text.error();
  // Some architectures print -1 for "no package id"; a host without packages has one.
  auto id = parse_i64(*text, path);
  if (!id) return id.error();
  if (*id < -1 || *id > kMaxCpu) {
    return Error{ErrorKind::malformed, path.string(),
                 quote_for_error(*text) + " is not a package id"};
  }
  return *id < 0 ? 0 : static_cast<int>(*id);
}

Result<std::vector<PackageCpu>> first_cpu_per_package(const HostPaths& paths) {
  auto online = read_online_cpus(paths);
  if (!online) return online.error();
  std::map<int, int> first;  // package → lowest CPU
  for (int cpu : *online) {
    auto package = read_package_of_cpu(paths, cpu);
    if (!package) return package.error();
    first.emplace(*package, cpu);  // CPUs ascend, so the first insert is the lowest
  }
  std::vector<PackageCpu> out;
  for (auto [package, cpu] : first) out.push_back(PackageCpu{package, cpu});
  return out;
}

}  // namespace wattprobe
