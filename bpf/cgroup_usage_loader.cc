#include "bpf/cgroup_usage_loader.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
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
#include "bpf/cgroup_usage.skel.h"
#include "bpf/libbpf_log.h"
#include "collectors/cpu/proc_stat.h"
#include "collectors/identity/cgroup_resolver.h"

namespace wattprobe {
namespace {

constexpr std::string_view kProgram = "bpf/cgroup_usage.bpf.c";

Error load_error(int err, std::string_view step) {
  std::string log = take_libbpf_log(600);
  std::string detail = std::string(step) + " failed: " + std::strerror(err);
  if (!log.empty()) detail += "; libbpf: " + log;
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

struct LinkDeleter {
  void operator()(::bpf_link* link) const { bpf_link__destroy(link); }
};

class KernelCgroupTreeReader : public CgroupTreeReader {
 public:
  KernelCgroupTreeReader(HostPaths paths,
                         std::unique_ptr<::cgroup_usage_bpf, CgroupUsageBpfDeleter> skeleton,
                         std::unique_ptr<::bpf_link, LinkDeleter> link, Fd root_stat,
                         std::string root_stat_path, const wp_cgroup_usage* slots,
                         std::size_t max_cgroups)
      : paths_(std::move(paths)),
        skeleton_(std::move(skeleton)),
        link_(std::move(link)),
        root_stat_(std::move(root_stat)),
        root_stat_path_(std::move(root_stat_path)),
        slots_(slots),
        max_cgroups_(max_cgroups) {
    long hz = ::sysconf(_SC_CLK_TCK);
    ns_per_clock_tick_ = 1'000'000'000ull / static_cast<uint64_t>(hz > 0 ? hz : 100);
  }
  ~KernelCgroupTreeReader() override {
    ::munmap(const_cast<wp_cgroup_usage*>(slots_), mapped_bytes(max_cgroups_));
  }

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
    skeleton_->bss->wp_visited = 0;
    if (auto walked = run_iterator(); !walked) return walked.error();
    // The root's own usage is not in its rstat (cgroup_base_stat_flush skips it); the kernel
    // makes the root's cpu.stat from kcpustat, and so does this.
    auto root_usage = read_root_usage();
    if (!root_usage) return root_usage.error();
    reading.monotonic_ns = monotonic_ns();

    std::size_t n = std::min<std::size_t>(skeleton_->bss->wp_visited, max_cgroups_);
    reading.cgroups.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      const wp_cgroup_usage& slot = slots_[i];
      CgroupTime& c = reading.cgroups[i];
      c.id = slot.id;
      c.parent_id = slot.parent_id;
      c.usage_ns = slot.parent_id == 0 ? *root_usage : slot.usage_ns;
    }
    reading.cgroups_lost = skeleton_->bss->wp_cgroups_lost;
    return reading;
  }

  bool kernel_reads_allowed() const override {
    Fd iter(bpf_iter_create(bpf_link__fd(link_.get())));
    return iter.fd >= 0;
  }

 private:
  Result<bool> run_iterator() {
    Fd iter(bpf_iter_create(bpf_link__fd(link_.get())));
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
  std::unique_ptr<::cgroup_usage_bpf, CgroupUsageBpfDeleter> skeleton_;
  std::unique_ptr<::bpf_link, LinkDeleter> link_;
  Fd root_stat_;
  std::string root_stat_path_;
  const wp_cgroup_usage* slots_;  // the array map, mapped read-only
  std::size_t max_cgroups_;
  uint64_t ns_per_clock_tick_ = 10'000'000;
};

enum class RstatFlush { css, cgroup };

/// Which rstat flush kfunc the running kernel's BTF has: css_rstat_flush (6.15+) or
/// cgroup_rstat_flush (6.1 to 6.14).
Result<RstatFlush> rstat_flush_of_kernel() {
  std::unique_ptr<::btf, void (*)(::btf*)> vmlinux(btf__load_vmlinux_btf(), btf__free);
  if (!vmlinux) return load_error(errno, "reading the kernel's BTF");
  if (btf__find_by_name_kind(vmlinux.get(), "css_rstat_flush", BTF_KIND_FUNC) > 0)
    return RstatFlush::css;
  if (btf__find_by_name_kind(vmlinux.get(), "cgroup_rstat_flush", BTF_KIND_FUNC) > 0)
    return RstatFlush::cgroup;
  return Error{ErrorKind::unsupported, std::string(kProgram),
               "the kernel has no rstat flush kfunc (css_rstat_flush since 6.15, "
               "cgroup_rstat_flush from 6.1 to 6.14)"};
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

void CgroupUsageBpfDeleter::operator()(::cgroup_usage_bpf* skeleton) const {
  cgroup_usage_bpf__destroy(skeleton);
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

  capture_libbpf_log();
  std::unique_ptr<::cgroup_usage_bpf, CgroupUsageBpfDeleter> skeleton(cgroup_usage_bpf__open());
  if (!skeleton) return load_error(errno, "opening the eBPF object");
  std::size_t max_cgroups = std::max<std::size_t>(1, options.max_cgroups);
  if (int err =
          bpf_map__set_max_entries(skeleton->maps.wp_cgroups, static_cast<__u32>(max_cgroups)))
    return load_error(-err, "sizing the cgroup map");
  auto flush = rstat_flush_of_kernel();
  if (!flush) return flush.error();
  skeleton->rodata->wp_flush_takes_css = *flush == RstatFlush::css;
  if (int err = cgroup_usage_bpf__load(skeleton.get()))
    return load_error(-err, "loading (verifier)");

  union bpf_iter_link_info info;
  std::memset(&info, 0, sizeof info);
  info.cgroup.cgroup_fd = static_cast<__u32>(root_dir.fd);
  info.cgroup.order = BPF_CGROUP_ITER_DESCENDANTS_PRE;
  LIBBPF_OPTS(bpf_iter_attach_opts, attach, .link_info = &info, .link_info_len = sizeof info);
  std::unique_ptr<::bpf_link, LinkDeleter> link(
      bpf_program__attach_iter(skeleton->progs.wp_cgroup_usage, &attach));
  if (!link) return load_error(errno, "attaching the cgroup iterator");

  void* slots = ::mmap(nullptr, KernelCgroupTreeReader::mapped_bytes(max_cgroups), PROT_READ,
                       MAP_SHARED, bpf_map__fd(skeleton->maps.wp_cgroups), 0);
  if (slots == MAP_FAILED) return load_error(errno, "mapping the cgroup array");
  auto reader = std::make_unique<KernelCgroupTreeReader>(
      paths, std::move(skeleton), std::move(link), std::move(root_stat), stat_path,
      static_cast<const wp_cgroup_usage*>(slots), max_cgroups);
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
