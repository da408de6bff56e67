#include "collectors/gpu/drm_fdinfo.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <string_view>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;

bool to_u64(std::string_view text, uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

/// Numeric entries of a folder, sorted (pids in /proc, fds in /proc/<pid>/fd).
std::vector<uint64_t> numbers_in(const fs::path& dir) {
  std::vector<uint64_t> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    uint64_t n = 0;
    if (to_u64(it->path().filename().string(), n)) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool parse_drm_fdinfo(std::string_view text, DrmClient& out) {
  bool driver = false, engine_ns = false;
  uint64_t ns_sum = 0, cycles_sum = 0;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    uint64_t n = 0;
    if (key == "drm-driver") {
      out.driver = std::string(value);
      driver = !value.empty();
    } else if (key == "drm-pdev") {
      out.pdev = std::string(value);
    } else if (key == "drm-client-id") {
      out.has_client_id = to_u64(value, out.client_id);
    } else if (key.starts_with("drm-engine-") && !key.starts_with("drm-engine-capacity-")) {
      // "<N> ns", summed over the engines: the client's busy time on the device.
      if (value.ends_with(" ns") && to_u64(value.substr(0, value.size() - 3), n)) {
        ns_sum += n;
        engine_ns = true;
      }
    } else if (key.starts_with("drm-cycles-")) {
      // xe counts busy GPU cycles instead of nanoseconds (drm-total-cycles-* is the device's).
      if (to_u64(value, n)) cycles_sum += n;
    }
  }
  out.cycles = !engine_ns;
  out.busy = engine_ns ? ns_sum : cycles_sum;
  return driver;
}

DrmScan scan_drm_clients(const HostPaths& paths) {
  DrmScan scan;
  const fs::path proc = paths.proc();
  for (uint64_t pid : numbers_in(proc)) {
    const fs::path dir = proc / std::to_string(pid);
    std::vector<uint64_t> fds = numbers_in(dir / "fd");
    if (fds.empty()) {
      std::error_code ec;
      if (!fs::exists(dir / "fd", ec)) continue;
    }
    ++scan.processes;
    for (uint64_t fd : fds) {
      const std::string name = std::to_string(fd);
      char target[256];
      ssize_t n = ::readlink((dir / "fd" / name).c_str(), target, sizeof target - 1);
      if (n <= 0 || !std::string_view(target, static_cast<std::size_t>(n)).starts_with("/dev/dri/"))
        continue;
      auto text = read_text(dir / "fdinfo" / name);
      if (!text) continue;  // the process or the file went away since the listing
      DrmClient c;
      c.pid = static_cast<uint32_t>(pid);
      if (!parse_drm_fdinfo(*text, c) || c.pdev.empty()) continue;
      if (!c.has_client_id) c.client_id = (pid << 32) | fd;  // one file, one process
      scan.clients.push_back(std::move(c));
    }
  }
  return scan;
}

std::map<std::string, std::vector<DrmBusySplit::Share>> DrmBusySplit::tick(const DrmScan& scan) {
  std::map<std::pair<std::string, uint64_t>, uint64_t> now;
  std::map<std::string, std::map<uint32_t, double>> added;  // pdev → pid → busy added
  for (const DrmClient& c : scan.clients) {
    // The scan is in pid order, so the lowest pid holding a shared file keeps it.
    auto [it, first] = now.emplace(std::pair{c.pdev, c.client_id}, c.busy);
    if (!first) continue;
    auto before = last_.find(it->first);
    if (before == last_.end() || c.busy < before->second) continue;
    if (c.busy > before->second)
      added[c.pdev][c.pid] += static_cast<double>(c.busy - before->second);
  }
  last_ = std::move(now);  // clients gone since are forgotten
  std::map<std::string, std::vector<Share>> out;
  for (const auto& [pdev, by_pid] : added) {
    double sum = 0;
    for (const auto& [pid, busy] : by_pid) sum += busy;
    if (sum <= 0) continue;
    std::vector<Share>& shares = out[pdev];
    for (const auto& [pid, busy] : by_pid) shares.push_back({pid, busy / sum});
  }
  return out;
}

}  // namespace wattprobe
