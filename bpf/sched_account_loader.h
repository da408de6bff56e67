#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

struct AccountingOptions {
  /// Distinct workloads reported per tick; the rest go to CpuTick::unaccounted_ns.
  std::size_t max_workloads = 5000;
  /// Fill CpuTick::processes (top-N process metrics, `top`).
  bool per_process = false;
  /// Entries of the kernel's task map: task groups alive or exited since the last drain. A full
  /// map is counted in CpuTick::records_lost, never silent.
  std::size_t max_tasks = 16384;
};

/// cgroup v2 id (the kernfs inode number of the cgroup's folder) → workload. Called once per id
/// seen; must not throw.
using WorkloadResolver = std::function<WorkloadId(uint64_t cgroup_id)>;

/// A live task group's current comm (from /proc/<tgid>/comm), or nullopt once it is gone. The
/// kernel map keeps the comm of a record's first slice, which for a forked child is its parent's
/// until exec; asking once per new process gets the name it runs under.
using CommResolver = std::function<std::optional<std::string>(uint32_t tgid)>;

/// One task group as the kernel's task map holds it: cumulative since the record was made.
struct TaskRecord {
  uint32_t tgid = 0;
  uint64_t start_time_ns = 0;  // group leader's start, CLOCK_MONOTONIC; with tgid, the identity
  uint64_t cpu_ns = 0;
  uint64_t cgroup_id = 0;
  bool exited = false;
  bool kernel_thread = false;
  std::string comm;
};

/// Everything one drain reads from the kernel.
struct TaskMapSnapshot {
  std::vector<TaskRecord> tasks;
  uint64_t idle_ns = 0;       // cumulative, summed over CPUs
  uint64_t lost_records = 0;  // cumulative
  uint64_t lost_ns = 0;       // cumulative
};

/// The kernel side of a drain, behind an interface so the drain logic is testable without BPF.
class TaskMapReader {
 public:
  virtual ~TaskMapReader() = default;
  /// Reads every record. Records marked exited are removed from the map by this call, atomically
  /// with their last read, so their final time is reported exactly once.
  virtual TaskMapSnapshot read() = 0;
};

/// Turns successive cumulative snapshots into per-tick, per-workload CPU time. Not thread-safe.
class TaskDrain {
 public:
  TaskDrain(AccountingOptions options, WorkloadResolver resolve, unsigned online_cpus,
            CommResolver comm = {});

  /// `monotonic_ns` is CLOCK_MONOTONIC at the read. The first call primes and returns an empty
  /// tick.
  CpuTick drain(const TaskMapSnapshot& snapshot, uint64_t monotonic_ns);

 private:
  struct TaskKey {
    uint32_t tgid;
    uint64_t start_time_ns;
    bool operator==(const TaskKey&) const = default;
  };
  struct TaskKeyHash {
    std::size_t operator()(const TaskKey& k) const {
      return std::hash<uint64_t>()(k.start_time_ns * 0x9E3779B97F4A7C15ull ^ k.tgid);
    }
  };
  const WorkloadId& workload_of(const TaskRecord& task);
  const std::string& comm_of(const TaskRecord& task);

  AccountingOptions options_;
  WorkloadResolver resolve_;
  unsigned online_cpus_;
  bool primed_ = false;
  uint64_t last_monotonic_ns_ = 0;
  uint64_t last_idle_ns_ = 0;
  uint64_t last_lost_records_ = 0;
  uint64_t last_lost_ns_ = 0;
  std::unordered_map<TaskKey, uint64_t, TaskKeyHash> last_cpu_ns_;  // live tasks only
  std::unordered_map<uint64_t, WorkloadId> workload_cache_;         // ids seen last drain
  std::unordered_map<uint64_t, WorkloadId> workload_cache_next_;
  CommResolver comm_;
  // Comms of the processes reported in the last drain; one that skips a drain is asked again.
  std::unordered_map<TaskKey, std::string, TaskKeyHash> comm_cache_;
  std::unordered_map<TaskKey, std::string, TaskKeyHash> comm_cache_next_;
};

struct BpfProgramStats {
  uint64_t instructions = 0;  // after the verifier's rewrite (xlated_prog_len / 8)
  uint64_t run_time_ns = 0;   // only counted while kernel.bpf_stats_enabled=1
  uint64_t run_count = 0;
};

/// The loaded and attached programs, whichever skeleton loaded them (the light one, or libbpf's
/// where the kernel cannot run the light one's loader): what the accounting uses of them.
class SchedAccountPrograms {
 public:
  virtual ~SchedAccountPrograms() = default;
  virtual int tasks_map_fd() const = 0;
  virtual int counters_map_fd() const = 0;
  virtual int switch_program_fd() const = 0;  // the sched_switch hook
};

/// CPU accounting from the eBPF sched_switch and exit hooks (bpf/sched_account.bpf.c).
class BpfAccounting : public CpuAccounting {
 public:
  /// Loads and attaches the programs. The Error says why not, in `doctor`'s words: permission
  /// (not root, no CAP_BPF, lockdown), unsupported (no BTF, verifier rejection with the log tail).
  static Result<std::unique_ptr<BpfAccounting>> load(const HostPaths& paths,
                                                     const AccountingOptions& options,
                                                     WorkloadResolver resolve);

  std::string_view mode() const override { return "bpf"; }
  CpuTick drain() override;
  /// A key lookup in the task map and a read of the program's stats: the bpf() calls a tick and
  /// the agent's own metrics make.
  bool kernel_reads_allowed() const override;

  /// The sched_switch program, the one that runs on every context switch.
  BpfProgramStats sched_switch_stats() const;

  /// What this host offers eBPF accounting, one finding per line, for `doctor`.
  static std::string kernel_support_report(const HostPaths& paths);

 private:
  BpfAccounting(std::unique_ptr<SchedAccountPrograms> programs,
                std::unique_ptr<TaskMapReader> reader, TaskDrain drain);

  std::unique_ptr<SchedAccountPrograms> programs_;
  std::unique_ptr<TaskMapReader> reader_;
  TaskDrain drain_;
};

Result<std::unique_ptr<CpuAccounting>> load_bpf_accounting(const HostPaths& paths,
                                                           const AccountingOptions& options,
                                                           WorkloadResolver resolve);

/// Online CPUs from <sys>/devices/system/cpu/online ("0-3,6"), the figure CpuTick::capacity_ns
/// multiplies by.
Result<unsigned> online_cpu_count(const HostPaths& paths);

}  // namespace wattprobe
