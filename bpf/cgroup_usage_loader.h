#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/cpu/cgroup_cpu.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// The kernel side of the `cgroup` mode, behind an interface so the accounting is testable
/// without BPF: one reading of every cgroup's usage.
class CgroupTreeReader {
 public:
  virtual ~CgroupTreeReader() = default;
  /// Every cgroup under the v2 root with its cumulative usage; the root's own from its cpu.stat.
  virtual Result<CgroupTreeReading> read() = 0;
  /// Whether the kernel lets this process start a walk now (the bpf() call a read makes).
  virtual bool kernel_reads_allowed() const { return true; }
};

/// CPU accounting from the kernel's own per-cgroup CPU time (cgroup v2 rstat, the figure of each
/// cpu.stat), read once a tick by a BPF cgroup iterator (bpf/cgroup_usage.bpf.c). Nothing runs
/// on the scheduler's path. Gives no per-process records.
class CgroupAccounting : public CpuAccounting {
 public:
  struct Options {
    std::size_t max_workloads = 5000;
    /// Slots of the kernel's cgroup array: cgroups one walk can hold. A cgroup past it leaves
    /// its time with its parent, counted in CpuTick::records_lost.
    std::size_t max_cgroups = 65536;
  };

  /// Loads the iterator and opens the root's cpu.stat. The Error says why not, in doctor's
  /// words: no cgroup v2 tree, no BTF, no privileges, a kernel without the iterator or the
  /// rstat flush kfunc (before 6.1; --accounting auto then takes bpf).
  static Result<std::unique_ptr<CgroupAccounting>> load(const HostPaths& paths, Options options,
                                                        CgroupCpuDrain::Resolver resolve);

  CgroupAccounting(std::unique_ptr<CgroupTreeReader> reader, CgroupCpuDrain drain);

  std::string_view mode() const override { return "cgroup"; }
  CpuTick drain() override;
  /// Creates an iterator and closes it unread: the bpf() call a tick makes.
  bool kernel_reads_allowed() const override { return reader_->kernel_reads_allowed(); }

  /// The last read's failure, if the last drain had one (the drain then gives no workloads).
  const std::optional<Error>& last_error() const { return last_error_; }

 private:
  std::unique_ptr<CgroupTreeReader> reader_;
  CgroupCpuDrain drain_;
  std::optional<Error> last_error_;
};

/// The usage_usec line of a cgroup's cpu.stat, in ns. `path` names the file in the error.
Result<uint64_t> parse_cpu_stat_usage(std::string_view text, std::string_view path);

}  // namespace wattprobe
