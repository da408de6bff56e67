#include "agent/cli/validate_burners.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/base/cpu_burn.h"

namespace wattprobe {
namespace fs = std::filesystem;

namespace {

// In the child: "0" moves the writer itself, so nothing needs formatting (no allocation after
// fork in a process with threads).
bool join_cgroup_in_child(const char* procs) {
  int fd = ::open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, "0\n", 2) == 2;
  ::close(fd);
  return ok;
}

fs::path cgroup2_root(const HostPaths& paths) {
  for (const char* rel : {"fs/cgroup", "fs/cgroup/unified"}) {
    fs::path p = paths.sys(rel);
    std::error_code ec;
    if (fs::exists(p / "cgroup.controllers", ec)) return p;
  }
  return {};
}

}  // namespace

Result<ValidateCgroups> ValidateCgroups::create(const HostPaths& paths,
                                                const std::vector<std::string>& names) {
  fs::path root = cgroup2_root(paths);
  if (root.empty()) {
    return Error{ErrorKind::unsupported, paths.sys("fs/cgroup").string(),
                 "no cgroup v2 hierarchy (cgroup.controllers) here"};
  }
  ValidateCgroups g;
  g.base_ = root / ("wattprobe-validate-" + std::to_string(::getpid()));
  if (::mkdir(g.base_.c_str(), 0755) != 0) {
    return error_from_errno(errno, g.base_.string(), "cannot create a cgroup");
  }
  for (const auto& n : names) {
    fs::path p = g.base_ / n;
    if (::mkdir(p.c_str(), 0755) != 0) {
      Error e = error_from_errno(errno, p.string(), "cannot create a cgroup");
      return e;  // g's destructor removes what was made
    }
    g.names_.push_back(n);
  }
  return g;
}

ValidateCgroups::ValidateCgroups(ValidateCgroups&& o) noexcept
    : base_(std::move(o.base_)), names_(std::move(o.names_)) {
  o.base_.clear();
  o.names_.clear();
}

ValidateCgroups::~ValidateCgroups() {
  if (base_.empty()) return;
  // A cgroup can be removed only once its last process is reaped; the kernel may lag a little.
  for (const auto& n : names_) {
    fs::path p = base_ / n;
    for (int i = 0; i < 50 && ::rmdir(p.c_str()) != 0 && errno == EBUSY; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (int i = 0; i < 50 && ::rmdir(base_.c_str()) != 0 && errno == EBUSY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

fs::path ValidateCgroups::path(const std::string& name) const { return base_ / name; }

Result<double> ValidateCgroups::usage_seconds(const std::string& name) const {
  fs::path file = path(name) / "cpu.stat";
  std::ifstream in(file);
  if (!in) return Error{ErrorKind::absent, file.string(), "cannot open"};
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key, value;
    if (!(fields >> key >> value) || key != "usage_usec") continue;
    uint64_t usec = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), usec);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return Error{ErrorKind::malformed, file.string(), "usage_usec is \"" + value + "\""};
    }
    return static_cast<double>(usec) * 1e-6;
  }
  return Error{ErrorKind::malformed, file.string(), "no usage_usec line"};
}

Result<pid_t> start_duty_burner(const fs::path& cgroup, double busy_ratio, double seconds) {
  const std::string procs = (cgroup / "cgroup.procs").string();
  constexpr int64_t kPeriodNs = 100'000'000;
  const int64_t busy_ns = static_cast<int64_t>(std::clamp(busy_ratio, 0.0, 1.0) * kPeriodNs);
  const int64_t length_ns = static_cast<int64_t>(seconds * 1e9);
  pid_t pid = ::fork();
  if (pid < 0) return error_from_errno(errno, "fork", "cannot start a burner");
  if (pid == 0) {
    if (!join_cgroup_in_child(procs.c_str())) ::_exit(3);
    const int64_t start = clock_ns(CLOCK_MONOTONIC);
    const int64_t end = start + length_ns;
    for (int64_t period = start; period < end; period += kPeriodNs) {
      burn_cpu_ns(std::min(busy_ns, std::max<int64_t>(0, end - clock_ns(CLOCK_MONOTONIC))));
      sleep_until_monotonic_ns(std::min(period + kPeriodNs, end));
    }
    ::_exit(0);
  }
  return pid;
}

Result<pid_t> start_spawner(const fs::path& cgroup, long count, double each_ms) {
  const std::string procs = (cgroup / "cgroup.procs").string();
  const int64_t each_ns = static_cast<int64_t>(each_ms * 1e6);
  pid_t pid = ::fork();
  if (pid < 0) return error_from_errno(errno, "fork", "cannot start the spawner");
  if (pid == 0) {
    if (!join_cgroup_in_child(procs.c_str())) ::_exit(3);
    int failures = 0;
    for (long i = 0; i < count; ++i) {
      pid_t c = ::fork();
      if (c < 0) ::_exit(4);
      if (c == 0) {
        burn_cpu_ns(each_ns);
        ::_exit(0);
      }
      int status = 0;
      if (::waitpid(c, &status, 0) != c || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        ++failures;
      }
    }
    ::_exit(failures == 0 ? 0 : 5);
  }
  return pid;
}

bool wait_child(pid_t pid) {
  int status = 0;
  pid_t got;
  while ((got = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  return got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace wattprobe
