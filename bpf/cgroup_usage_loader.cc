#include "bpf/cgroup_usage_loader.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <utility>
#include <vector>

#include "agent/base/text_file.h"
#include "bpf/cgroup_usage.h"
#include "bpf/cgroup_usage_program.h"
#include "collectors/cpu/proc_stat.h"
#include "collectors/identity/cgroup_resolver.h"

namespace wattprobe {
namespace {

constexpr std::string_view kProgram = "bpf/cgroup_usage.bpf.c";

Error load_error(int err, std::string_view step, std::string_view log = {}) {
  std::string detail = std::string(step) + " failed: " + std::strerror(err);
  if (!log.empty()) detail += "; verifier: " + std::string(log);
  ErrorKind kind = (err == EPERM || err == EACCES) ? ErrorKind::permission : ErrorKind::unsupported;
  return Error{kind, std::string(kProgram), std::move(detail)};
}

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(std::exchange(o.fd, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

/// Owns a loaded program (the light skeleton's descriptors and its mapped .bss).
struct LoadedProgram {
  wp_cgroup_usage_program program{};
  LoadedProgram() = default;
  LoadedProgram(const LoadedProgram&) = delete;
  LoadedProgram& operator=(const LoadedProgram&) = delete;
  ~LoadedProgram() { wp_cgroup_usage_program_destroy(&program); }
};

class KernelCgroupTreeReader : public CgroupTreeReader {
 public:
  KernelCgroupTreeReader(HostPaths paths, std::unique_ptr<LoadedProgram> program, Fd link,
                         Fd root_stat, std::string root_stat_path, std::size_t max_cgroups)
      : paths_(std::move(paths)),
        program_(std::move(program)),
        link_(std::move(link)),
        root_stat_(std::move(root_stat)),
        root_stat_path_(std::move(root_stat_path)),
        max_cgroups_(max_cgroups) {
    long hz = ::sysconf(_SC_CLK_TCK);
    ns_per_clock_tick_ = 1'000'000'000ull / static_cast<uint64_t>(hz > 0 ? hz : 100);
  }
  ~KernelCgroupTreeReader() override { unmap(); }

  static std::size_t mapped_bytes(std::size_t slots) {
    std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    return (slots * sizeof(wp_cgroup_usage) + page - 1) / page * page;
  }

  Result<CgroupTreeReading> read() override {
    CgroupTreeReading reading;
    if (auto stat = read_proc_stat(paths_)) {
      reading.idle_ns = (stat->aggregate.idle + stat->aggregate.iowait) * ns_per_clock_tick_;
      reading.idle_known = true;
      reading.online_cpus = static_cast<unsigned>(std::max(1, stat->online_cpus()));
    }
    *program_->program.visited = 0;
    if (auto walked = run_iterator(); !walked) return walked.error();
    // The root's own usage is not in its rstat (cgroup_base_stat_flush skips it); the kernel
    // makes the root's cpu.stat from kcpustat, and so does this.
    auto root_usage = read_root_usage();
    if (!root_usage) return root_usage.error();
    reading.monotonic_ns = monotonic_ns();

    std::size_t n = std::min<std::size_t>(*program_->program.visited, max_cgroups_);
    if (auto mapped = map_slots(n); !mapped) return mapped.error();
    reading.cgroups.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const wp_cgroup_usage& slot = slots_[i];
      CgroupTime& c = reading.cgroups[i];
      c.id = slot.id;
      c.parent_id = slot.parent_id;
      c.usage_ns = slot.parent_id == 0 ? *root_usage : slot.usage_ns;
    }
    reading.cgroups_lost = *program_->program.cgroups_lost;
    return reading;
  }

  bool kernel_reads_allowed() const override {
    Fd iter(bpf_iter_create(link_.fd));
    return iter.fd >= 0;
  }

 private:
  /// Maps the array's first `n` slots, whole pages, if they are not yet. The kernel maps every
  /// page of a mapping at once, and each counts in the agent's RSS: all 65,536 slots are 1.5 MiB,
  /// where a host's few hundred cgroups fill a page or two.
  Result<bool> map_slots(std::size_t n) {
    if (n <= mapped_slots_) return true;
    std::size_t bytes = mapped_bytes(n);
    unmap();
    void* slots =
        ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, program_->program.cgroups_map_fd, 0);
    if (slots == MAP_FAILED)
      return error_from_errno(errno, std::string(kProgram), "mapping the cgroup array");
    slots_ = static_cast<const wp_cgroup_usage*>(slots);
    mapped_slots_ = std::min(max_cgroups_, bytes / sizeof(wp_cgroup_usage));
    return true;
  }

  void unmap() {
    if (slots_) ::munmap(const_cast<wp_cgroup_usage*>(slots_), mapped_bytes(mapped_slots_));
    slots_ = nullptr;
    mapped_slots_ = 0;
  }

  Result<bool> run_iterator() {
    Fd iter(bpf_iter_create(link_.fd));
    if (iter.fd < 0) return error_from_errno(errno, std::string(kProgram), "bpf_iter_create");
    char sink[64];  // the program writes to the array, not to the file
    for (;;) {
      ssize_t got = ::read(iter.fd, sink, sizeof sink);
      if (got == 0) return true;
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) return error_from_errno(errno, std::string(kProgram), "reading the iterator");
    }
  }

  Result<uint64_t> read_root_usage() {
    char buf[1024];
    ssize_t got = ::pread(root_stat_.fd, buf, sizeof buf - 1, 0);
    if (got < 0) return error_from_errno(errno, root_stat_path_, "pread");
    return parse_cpu_stat_usage(std::string_view(buf, static_cast<std::size_t>(got)),
                                root_stat_path_);
  }

  HostPaths paths_;
  std::unique_ptr<LoadedProgram> program_;
  Fd link_;  // closed before the program (members go in reverse order)
  Fd root_stat_;
  std::string root_stat_path_;
  std::size_t max_cgroups_;
  const wp_cgroup_usage* slots_ = nullptr;  // the array's first mapped_slots_, read-only
  std::size_t mapped_slots_ = 0;
  uint64_t ns_per_clock_tick_ = 10'000'000;
};

/// The verifier's log of one more load with `flush_takes_css`, its last lines within `max_bytes`:
/// the reason of a refusal, asked only once the load has failed.
std::string refusal_log(bool flush_takes_css, uint32_t max_cgroups, std::size_t max_bytes) {
  std::vector<char> log(64 * 1024);
  wp_cgroup_usage_program program{};
  int err = wp_cgroup_usage_program_load(flush_takes_css, max_cgroups, log.data(),
                                         static_cast<uint32_t>(log.size()), &program);
  wp_cgroup_usage_program_destroy(&program);
  std::string_view text(log.data(), strnlen(log.data(), log.size()));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.size() > max_bytes) {
    text.remove_prefix(text.size() - max_bytes);
    if (auto nl = text.find('\n'); nl != std::string_view::npos) text.remove_prefix(nl + 1);
  }
  std::string out(text);
  for (char& c : out)
    if (c == '\n') c = ' ';
  if (out.empty()) out = err ? std::strerror(-err) : "loaded this time";
  return out;
}

/// Loads the program with the rstat flush of 6.15+ (css_rstat_flush) and, where the kernel
/// refuses it, with that of 6.1 to 6.14 (cgroup_rstat_flush): both are weak kfuncs, and the
/// verifier refuses a call to the one the kernel lacks. A load is cheap now that the kernel
/// resolves the kfuncs itself, cheaper than reading its BTF to ask first.
Result<std::unique_ptr<LoadedProgram>> load_program(std::size_t max_cgroups) {
  auto slots = static_cast<uint32_t>(max_cgroups);
  auto loaded = std::make_unique<LoadedProgram>();
  int css = wp_cgroup_usage_program_load(true, slots, nullptr, 0, &loaded->program);
  if (css == 0) return loaded;
  if (css == -EPERM || css == -EACCES) return load_error(-css, "loading the eBPF program");
  int cgroup = wp_cgroup_usage_program_load(false, slots, nullptr, 0, &loaded->program);
  if (cgroup == 0) return loaded;
  return load_error(
      -cgroup, "loading (verifier) with either rstat flush kfunc",
      "with css_rstat_flush (Linux 6.15+): " + refusal_log(true, slots, 300) +
          "; with cgroup_rstat_flush (6.1 to 6.14): " + refusal_log(false, slots, 300));
}

}  // namespace

Result<uint64_t> parse_cpu_stat_usage(std::string_view text, std::string_view path) {
  std::string_view rest = text;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    constexpr std::string_view kKey = "usage_usec ";
    if (!line.starts_with(kKey)) continue;
    auto usec = parse_u64(trim(line.substr(kKey.size())), std::string(path));
    if (!usec || *usec > UINT64_MAX / 1000)
      return Error{ErrorKind::malformed, std::string(path),
                   "usage_usec " + quote_for_error(line.substr(kKey.size()))};
    return *usec * 1000;
  }
  return Error{ErrorKind::malformed, std::string(path),
               "no usage_usec line in " + quote_for_error(text)};
}

CgroupAccounting::CgroupAccounting(std::unique_ptr<CgroupTreeReader> reader, CgroupCpuDrain drain)
    : reader_(std::move(reader)), drain_(std::move(drain)) {}

Result<std::unique_ptr<CgroupAccounting>> CgroupAccounting::load(const HostPaths& paths,
                                                                 Options options,
                                                                 CgroupCpuDrain::Resolver resolve) {
  auto root = find_cgroup2_root(paths);
  if (!root)
    return Error{ErrorKind::unsupported, paths.cgroup().string(),
                 "no cgroup v2 hierarchy (neither cgroup.controllers nor unified/ under it)"};
  std::error_code ec;
  if (!std::filesystem::exists(paths.sys("kernel/btf/vmlinux"), ec))
    return Error{ErrorKind::unsupported, paths.sys("kernel/btf/vmlinux").string(),
                 "no kernel BTF: the cgroup iterator cannot be relocated"};
  std::string stat_path = (*root / "cpu.stat").string();
  Fd root_stat(::open(stat_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (root_stat.fd < 0) return error_from_errno(errno, stat_path, "open");
  Fd root_dir(::open(root->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root_dir.fd < 0) return error_from_errno(errno, root->string(), "open");

  std::size_t max_cgroups = std::max<std::size_t>(1, options.max_cgroups);
  auto program = load_program(max_cgroups);
  if (!program) return program.error();

  union bpf_iter_link_info info;
  std::memset(&info, 0, sizeof info);
  info.cgroup.cgroup_fd = static_cast<__u32>(root_dir.fd);
  info.cgroup.order = BPF_CGROUP_ITER_DESCENDANTS_PRE;
  LIBBPF_OPTS(bpf_link_create_opts, attach, .iter_info = &info, .iter_info_len = sizeof info);
  Fd link(bpf_link_create((*program)->program.program_fd, 0, BPF_TRACE_ITER, &attach));
  if (link.fd < 0) return load_error(errno, "attaching the cgroup iterator");

  auto reader = std::make_unique<KernelCgroupTreeReader>(
      paths, std::move(*program), std::move(link), std::move(root_stat), stat_path, max_cgroups);
  // One reading proves the iterator runs here (a kernel may load it and refuse to run); the
  // first drain primes, as in the other modes.
  if (auto probe = reader->read(); !probe) return probe.error();
  return std::make_unique<CgroupAccounting>(
      std::move(reader), CgroupCpuDrain(options.max_workloads, std::move(resolve)));
}

CpuTick CgroupAccounting::drain() {
  auto reading = reader_->read();
  if (!reading) {
    last_error_ = reading.error();
    return CpuTick{};
  }
  last_error_.reset();
  return drain_.drain(*reading);
}

}  // namespace wattprobe
