#include "collectors/cpu/procfs_accounting.h"

#include <dirent.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <utility>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

constexpr uint64_t kPfKthread = 0x00200000;  // include/linux/sched.h PF_KTHREAD
constexpr std::size_t kMaxIdentities = 8192;
constexpr std::size_t kMaxStatBytes = 4096;
constexpr std::size_t kMaxCgroupBytes = 16384;

uint64_t boottime_now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bool parse_field(std::string_view s, uint64_t& out) {
  if (s.empty() || s.front() == '-' || s.front() == '+') return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

/// A task that exits between listing /proc and reading its files gives ENOENT, or ESRCH once the
/// files are open: that is churn, not a failure.
enum class ReadStatus { ok, gone, failed };

ReadStatus read_proc_file(const std::filesystem::path& path, std::size_t max_bytes,
                          std::string& out, Error& error) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) return ReadStatus::gone;
    error = error_from_errno(errno, path.string(), "open");
    return ReadStatus::failed;
  }
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      if (err == ESRCH || err == ENOENT) return ReadStatus::gone;
      error = error_from_errno(err, path.string(), "read");
      return ReadStatus::failed;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      error = Error{ErrorKind::malformed, path.string(),
                    "larger than " + std::to_string(max_bytes) + " bytes"};
      return ReadStatus::failed;
    }
  }
  ::close(fd);
  return ReadStatus::ok;
}

/// comm is at most 15 bytes of whatever the process chose; it may become a label value.
std::string printable_comm(std::string_view comm) {
  std::string out;
  out.reserve(comm.size());
  for (char c : comm) {
    auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  return out;
}

}  // namespace

Result<ProcStat> parse_proc_stat(std::string_view line, const std::filesystem::path& path) {
  auto bad = [&](std::string what) {
    return Error{ErrorKind::malformed, path.string(), what + " in " + quote_for_error(line)};
  };
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  auto open = line.find(" (");
  auto close = line.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) {
    return bad("no \"(comm)\"");
  }
  ProcStat st;
  uint64_t pid = 0;
  if (!parse_field(line.substr(0, open), pid) || pid == 0 || pid > UINT32_MAX) {
    return bad("pid is not a number");
  }
  st.pid = static_cast<uint32_t>(pid);
  st.comm = std::string(line.substr(open + 2, close - open - 2));
  std::string_view rest = line.substr(close + 1);
  if (rest.empty() || rest.front() != ' ') return bad("no space after comm");
  rest.remove_prefix(1);

  // Fields from 3 (state) on, 1-based as in proc(5).
  std::vector<std::string_view> fields;
  fields.reserve(52);
  while (!rest.empty()) {
    auto sp = rest.find(' ');
    fields.push_back(rest.substr(0, sp));
    if (sp == std::string_view::npos) break;
    rest.remove_prefix(sp + 1);
  }
  if (fields.size() < 20) return bad("fewer than 22 fields");
  auto field = [&](int n) { return fields[static_cast<std::size_t>(n - 3)]; };
  if (field(3).size() != 1) return bad("state is not one letter");
  st.state = field(3).front();
  if (!parse_field(field(9), st.flags)) return bad("flags (field 9) is not a number");
  if (!parse_field(field(14), st.utime)) return bad("utime (field 14) is not a number");
  if (!parse_field(field(15), st.stime)) return bad("stime (field 15) is not a number");
  if (!parse_field(field(22), st.starttime)) return bad("starttime (field 22) is not a number");
  return st;
}

ProcfsAccounting::ProcfsAccounting(HostPaths paths, Options options)
    : paths_(paths),
      options_(std::move(options)),
      table_(options_.max_workloads),
      resolver_(paths) {
  if (!options_.boottime_ns) options_.boottime_ns = boottime_now_ns;
  uint64_t hz = options_.clock_ticks_per_second;
  if (hz == 0) {
    long v = ::sysconf(_SC_CLK_TCK);
    hz = v > 0 ? static_cast<uint64_t>(v) : 100;
  }
  tick_ns_ = 1000000000ULL / hz;
}

void ProcfsAccounting::read_node_stat(uint64_t now_ns, CpuTick& tick) {
  auto path = paths_.proc("stat");
  auto text = read_text(path, 1 << 20);
  if (!text) {
    errors_.push_back(text.error());
    have_node_stat_ = false;
    return;
  }
  uint64_t idle_ticks = 0;
  uint64_t cpus = 0;
  bool found_total = false;
  std::string_view all(*text);
  while (!all.empty()) {
    auto nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
    if (!line.starts_with("cpu")) continue;
    if (line.starts_with("cpu ")) {
      // cpu  user nice system idle iowait irq softirq steal guest guest_nice (USER_HZ, all CPUs)
      std::vector<std::string_view> f;
      std::string_view rest = line.substr(4);
      while (!rest.empty()) {
        auto sp = rest.find(' ');
        if (sp != 0) f.push_back(rest.substr(0, sp));
        if (sp == std::string_view::npos) break;
        rest.remove_prefix(sp + 1);
      }
      uint64_t idle = 0, iowait = 0;
      if (f.size() < 5 || !parse_field(f[3], idle) || !parse_field(f[4], iowait)) {
        errors_.push_back(Error{ErrorKind::malformed, path.string(),
                                "cpu line " + quote_for_error(line) + " has no idle and iowait"});
        have_node_stat_ = false;
        return;
      }
      idle_ticks = idle + iowait;
      found_total = true;
    } else {
      ++cpus;  // /proc/stat lists online CPUs only
    }
  }
  if (!found_total || cpus == 0) {
    errors_.push_back(Error{ErrorKind::malformed, path.string(), "no \"cpu\" lines"});
    have_node_stat_ = false;
    return;
  }
  if (have_node_stat_ && now_ns >= prev_now_ns_) {
    tick.capacity_ns = cpus * (now_ns - prev_now_ns_);
    if (idle_ticks >= prev_idle_ticks_) tick.idle_ns = (idle_ticks - prev_idle_ticks_) * tick_ns_;
  }
  prev_idle_ticks_ = idle_ticks;
  have_node_stat_ = true;
}

std::optional<std::string> ProcfsAccounting::read_pid_file(const std::filesystem::path& path,
                                                           std::size_t max_bytes) {
  std::string text;
  Error error;
  switch (read_proc_file(path, max_bytes, text, error)) {
    case ReadStatus::gone:
      return std::nullopt;
    case ReadStatus::failed:
      errors_.push_back(std::move(error));
      return std::nullopt;
    case ReadStatus::ok:
      break;
  }
  return text;
}

std::optional<ProcfsAccounting::StatLine> ProcfsAccounting::read_stat(uint32_t pid) {
  auto path = paths_.proc(std::to_string(pid) + "/stat");
  auto read = read_pid_file(path, kMaxStatBytes);
  if (!read) return std::nullopt;
  const std::string& text = *read;
  if (text.empty()) return std::nullopt;  // a zombie being reaped can read empty
  auto st = parse_proc_stat(text, path);
  if (!st) {
    errors_.push_back(st.error());
    return std::nullopt;
  }
  if (st->pid != pid) {
    errors_.push_back(
        Error{ErrorKind::malformed, path.string(),
              "pid " + std::to_string(st->pid) + " in the file of pid " + std::to_string(pid)});
    return std::nullopt;
  }
  return StatLine{std::move(st->comm), st->flags, st->utime + st->stime, st->starttime};
}

std::optional<std::string_view> cgroup_path_in_proc_cgroup(std::string_view text) {
  // hierarchy-id:controllers:path, one line per hierarchy; "0::" is the v2 one.
  std::optional<std::string_view> v1_cpuacct;
  std::string_view all(text);
  while (!all.empty()) {
    auto nl = all.find('\n');
    std::string_view line = all.substr(0, nl);
    all = nl == std::string_view::npos ? std::string_view{} : all.substr(nl + 1);
    auto c1 = line.find(':');
    auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view cg = line.substr(c2 + 1);
    if (cg.empty() || cg.front() != '/') continue;
    if (line.substr(0, c2) == "0:") return cg;
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view rest = controllers;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      if (rest.substr(0, comma) == "cpuacct") v1_cpuacct = cg;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return v1_cpuacct;
}

std::optional<std::string> ProcfsAccounting::read_cgroup(uint32_t pid) {
  auto path = paths_.proc(std::to_string(pid) + "/cgroup");
  auto read = read_pid_file(path, kMaxCgroupBytes);
  if (!read) return std::nullopt;
  const std::string& text = *read;
  if (auto cg = cgroup_path_in_proc_cgroup(text)) return std::string(*cg);
  errors_.push_back(Error{ErrorKind::malformed, path.string(),
                          "no \"0::\" or cpuacct line in " + quote_for_error(text)});
  return std::nullopt;
}

const WorkloadId& ProcfsAccounting::identity(const std::string& cgroup_path) {
  auto it = identities_.find(cgroup_path);
  if (it != identities_.end()) return it->second;
  if (identities_.size() >= kMaxIdentities) identities_.clear();
  return identities_.emplace(cgroup_path, resolver_.resolve_path(cgroup_path)).first->second;
}

CpuTick ProcfsAccounting::drain() {
  errors_.clear();
  CpuTick tick;
  uint64_t now_ns = options_.boottime_ns();
  bool priming = drains_ == 0;
  ++drains_;
  read_node_stat(now_ns, tick);

  static const WorkloadId kKernel{"kernel", "kernel", "", "", ""};
  auto proc = paths_.proc();
  DIR* dir = ::opendir(proc.c_str());
  if (dir == nullptr) {
    errors_.push_back(error_from_errno(errno, proc.string(), "opendir"));
    table_.finish(tick);
    prev_now_ns_ = now_ns;
    return tick;
  }
  while (dirent* d = ::readdir(dir)) {
    uint64_t pid64 = 0;
    if (!parse_field(d->d_name, pid64) || pid64 == 0 || pid64 > UINT32_MAX) continue;
    auto pid = static_cast<uint32_t>(pid64);
    auto st = read_stat(pid);
    if (!st) continue;

    uint64_t delta_ticks = 0;
    auto [it, inserted] = tasks_.try_emplace(pid);
    Task& task = it->second;
    bool reused = !inserted && task.start_ticks != st->start_ticks;
    if (inserted || reused) {
      // Time only counts when the task began after the previous drain; otherwise it is the first
      // sighting of a task that was already running when the agent started: prime.
      uint64_t started_ns = st->start_ticks * tick_ns_;
      if (!priming && started_ns + tick_ns_ >= prev_now_ns_) delta_ticks = st->cpu_ticks;
      task = Task{st->start_ticks, st->cpu_ticks, drains_, {}};
    } else {
      if (st->cpu_ticks > task.cpu_ticks) delta_ticks = st->cpu_ticks - task.cpu_ticks;
      task.cpu_ticks = st->cpu_ticks;
      task.seen_drain = drains_;
    }
    if (delta_ticks == 0) continue;

    uint64_t cpu_ns = delta_ticks * tick_ns_;
    const WorkloadId* id = &kKernel;
    if ((st->flags & kPfKthread) == 0) {
      if (auto cg = read_cgroup(pid)) task.cgroup = std::move(*cg);
      if (task.cgroup.empty()) {
        tick.unaccounted_ns += cpu_ns;  // gone before we learnt where it ran
        continue;
      }
      id = &identity(task.cgroup);
    }
    auto slot = table_.add(*id, cpu_ns);
    if (slot && options_.per_process) {
      tick.processes.push_back(
          ProcessCpu{pid, st->start_ticks * tick_ns_, printable_comm(st->comm), *slot, cpu_ns});
    }
  }
  ::closedir(dir);

  std::erase_if(tasks_, [&](const auto& kv) { return kv.second.seen_drain != drains_; });
  table_.finish(tick);
  prev_now_ns_ = now_ns;
  return tick;
}

std::unique_ptr<CpuAccounting> make_procfs_accounting(const HostPaths& paths,
                                                      std::size_t max_workloads, bool per_process) {
  ProcfsAccounting::Options options;
  options.max_workloads = max_workloads;
  options.per_process = per_process;
  return std::make_unique<ProcfsAccounting>(paths, std::move(options));
}

}  // namespace wattprobe
