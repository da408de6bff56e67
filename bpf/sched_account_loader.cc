#include "bpf/sched_account_loader.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <sstream>

#include "agent/base/text_file.h"
#include "bpf/libbpf_log.h"
#include "bpf/sched_account.h"
#include "bpf/sched_account.skel.h"
#include "bpf/sched_account_program.h"

namespace wattprobe {
namespace {

uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

// Capability numbers from include/uapi/linux/capability.h.
constexpr int kCapSysAdmin = 21;
constexpr int kCapPerfmon = 38;
constexpr int kCapBpf = 39;

// CapEff from <proc>/self/status, a 64-bit hex mask.
Result<uint64_t> effective_capabilities(const HostPaths& paths) {
  auto path = paths.proc("self/status");
  auto text = read_text(path);
  if (!text) return text.error();
  std::string_view rest = *text;
  constexpr std::string_view kField = "CapEff:";
  auto at = rest.find(kField);
  if (at == std::string_view::npos)
    return Error{ErrorKind::malformed, path.string(), "no CapEff line"};
  rest.remove_prefix(at + kField.size());
  rest = trim(rest.substr(0, rest.find('\n')));
  uint64_t mask = 0;
  if (rest.empty() || rest.size() > 16)
    return Error{ErrorKind::malformed, path.string(), "CapEff " + quote_for_error(rest)};
  for (char c : rest) {
    int digit = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
    if (digit < 0)
      return Error{ErrorKind::malformed, path.string(), "CapEff " + quote_for_error(rest)};
    mask = mask << 4 | uint64_t(digit);
  }
  return mask;
}

bool has_cap(uint64_t mask, int cap) { return (mask >> cap) & 1; }

// The selected mode is the bracketed word: "none [integrity] confidentiality".
std::string lockdown_mode(std::string_view text) {
  auto open = text.find('[');
  auto close = text.find(']', open);
  if (open == std::string_view::npos || close == std::string_view::npos) return {};
  return std::string(text.substr(open + 1, close - open - 1));
}

// Whether the load can work at all, before asking the kernel: each refusal in doctor's words.
std::optional<Error> precondition_error(const HostPaths& paths) {
  auto btf = paths.sys("kernel/btf/vmlinux");
  std::error_code ec;
  if (!std::filesystem::exists(btf, ec))
    return Error{ErrorKind::unsupported, btf.string(),
                 "no kernel BTF (kernel built without CONFIG_DEBUG_INFO_BTF): the CO-RE eBPF "
                 "program cannot be relocated"};
  if (auto caps = effective_capabilities(paths)) {
    bool bpf_caps = has_cap(*caps, kCapBpf) && has_cap(*caps, kCapPerfmon);
    if (!bpf_caps && !has_cap(*caps, kCapSysAdmin))
      return Error{ErrorKind::permission, paths.proc("self/status").string(),
                   "uid " + std::to_string(geteuid()) +
                       " lacks CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run as root or grant "
                       "them"};
  }
  auto lockdown_path = paths.sys("kernel/security/lockdown");
  if (auto lockdown = read_text(lockdown_path)) {
    if (lockdown_mode(*lockdown) == "confidentiality")
      return Error{ErrorKind::permission, lockdown_path.string(),
                   "kernel lockdown is 'confidentiality', which forbids eBPF reading kernel "
                   "memory"};
  }
  return std::nullopt;
}

std::string log_tail(std::string log, std::size_t lines) {
  std::size_t at = log.size();
  for (std::size_t n = 0; n < lines && at != std::string::npos && at > 0; ++n)
    at = log.rfind('\n', at - 1);
  if (at != std::string::npos && at < log.size()) log.erase(0, at + 1);
  return log;
}

Error load_error(int err, std::string_view step) {
  std::string log = log_tail(take_libbpf_log(), 12);
  std::string detail = std::string(step) + " failed: " + std::strerror(err);
  if (!log.empty()) detail += "; libbpf: " + log;
  ErrorKind kind =
      (err == EPERM || err == EACCES) && log.find("BEGIN PROG LOAD LOG") == std::string::npos
          ? ErrorKind::permission
          : ErrorKind::unsupported;
  return Error{kind, "bpf/sched_account.bpf.c", std::move(detail)};
}

class KernelTaskMapReader : public TaskMapReader {
 public:
  KernelTaskMapReader(int tasks_fd, int counters_fd, std::size_t max_tasks)
      : tasks_fd_(tasks_fd),
        counters_fd_(counters_fd),
        possible_cpus_(std::max(1, libbpf_num_possible_cpus())),
        keys_(max_tasks),
        values_(max_tasks),
        per_cpu_(possible_cpus_) {}

  TaskMapSnapshot read() override {
    TaskMapSnapshot snapshot;
    read_tasks(snapshot.tasks);
    snapshot.idle_ns = counter(WP_COUNTER_IDLE_NS);
    snapshot.lost_records = counter(WP_COUNTER_LOST_RECORDS);
    snapshot.lost_ns = counter(WP_COUNTER_LOST_NS);
    return snapshot;
  }

 private:
  void read_tasks(std::vector<TaskRecord>& out) {
    std::size_t n = read_batch();
    if (batch_unsupported_) n = read_by_key();
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      wp_task_record value = values_[i];
      if (value.flags & WP_TASK_EXITED) {
        // The read that counts is the one that deletes, so the exit's last slice is not lost
        // between a lookup and a delete.
        wp_task_record last{};
        if (bpf_map_lookup_and_delete_elem(tasks_fd_, &keys_[i], &last) == 0) {
          value = last;
        } else if (errno != ENOENT) {
          bpf_map_delete_elem(tasks_fd_, &keys_[i]);
        }
      }
      TaskRecord& task = out.emplace_back();
      task.tgid = keys_[i].tgid;
      task.start_time_ns = keys_[i].start_time_ns;
      task.cpu_ns = value.cpu_ns;
      task.cgroup_id = value.cgroup_id;
      task.exited = value.flags & WP_TASK_EXITED;
      task.kernel_thread = value.flags & WP_TASK_KTHREAD;
      task.comm.assign(value.comm, strnlen(value.comm, sizeof value.comm));
    }
  }

  // One syscall for the whole map where the kernel has batch ops (5.6+).
  std::size_t read_batch() {
    std::size_t total = 0;
    uint64_t token = 0;  // htab batches are u32 bucket cursors; 8 bytes is room enough
    bool first = true;
    while (total < keys_.size()) {
      __u32 count = static_cast<__u32>(keys_.size() - total);
      int err = bpf_map_lookup_batch(tasks_fd_, first ? nullptr : &token, &token, &keys_[total],
                                     &values_[total], &count, nullptr);
      int saved = errno;
      first = false;
      total += count;
      if (err == 0) continue;
      if (saved == ENOENT) break;  // end of map
      if (saved == EINVAL || saved == ENOTSUP || saved == EOPNOTSUPP || saved == 524 /*ENOTSUPP*/)
        batch_unsupported_ = true;
      break;
    }
    return total;
  }

  std::size_t read_by_key() {
    std::size_t n = 0;
    wp_task_key key{}, previous{};
    bool started = false;
    while (n < keys_.size() &&
           bpf_map_get_next_key(tasks_fd_, started ? &previous : nullptr, &key) == 0) {
      if (bpf_map_lookup_elem(tasks_fd_, &key, &values_[n]) == 0) keys_[n++] = key;
      previous = key;
      started = true;
    }
    return n;
  }

  uint64_t counter(uint32_t slot) {
    if (bpf_map_lookup_elem(counters_fd_, &slot, per_cpu_.data()) != 0) return 0;
    uint64_t sum = 0;
    for (uint64_t v : per_cpu_) sum += v;
    return sum;
  }

  int tasks_fd_;
  int counters_fd_;
  int possible_cpus_;
  bool batch_unsupported_ = false;
  std::vector<wp_task_key> keys_;
  std::vector<wp_task_record> values_;
  std::vector<uint64_t> per_cpu_;
};

std::string workload_key(const WorkloadId& id) {
  std::string key;
  for (const std::string* part : {&id.workload, &id.kind, &id.namespace_, &id.pod, &id.container}) {
    key += *part;
    key += '\x1f';
  }
  return key;
}

// The PMU check `doctor` prints: per-task cycles need a hardware cycles counter.
std::string pmu_cycles_finding() {
  perf_event_attr attr{};
  attr.type = PERF_TYPE_HARDWARE;
  attr.size = sizeof attr;
  attr.config = PERF_COUNT_HW_CPU_CYCLES;
  attr.disabled = 1;
  attr.exclude_hv = 1;
  long fd = syscall(SYS_perf_event_open, &attr, -1, 0, -1, 0);
  if (fd < 0) {
    int err = errno;
    return std::string("PMU cycles: unavailable (perf_event_open cycles: ") + std::strerror(err) +
           (err == ENOENT || err == EOPNOTSUPP ? "; no hardware counters, typical of a VM" : "") +
           "); per-task cycles and instructions are off";
  }
  close(static_cast<int>(fd));
  return "PMU cycles: hardware counter present; per-task cycles and instructions are not "
         "collected by this version";
}

}  // namespace

Result<unsigned> online_cpu_count(const HostPaths& paths) {
  auto path = paths.sys("devices/system/cpu/online");
  auto text = read_text(path);
  if (!text) return text.error();
  std::string_view list = trim(*text);
  auto bad = [&] {
    return Error{ErrorKind::malformed, path.string(), "CPU list " + quote_for_error(*text)};
  };
  if (list.empty()) return bad();
  unsigned count = 0;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view range = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    auto dash = range.find('-');
    auto first = parse_u64(range.substr(0, dash), path);
    if (!first) return bad();
    uint64_t last = *first;
    if (dash != std::string_view::npos) {
      auto l = parse_u64(range.substr(dash + 1), path);
      if (!l || *l < *first) return bad();
      last = *l;
    }
    if (last - *first >= 65536) return bad();
    count += static_cast<unsigned>(last - *first + 1);
    if (comma != std::string_view::npos && list.empty()) return bad();
  }
  return count;
}

TaskDrain::TaskDrain(AccountingOptions options, WorkloadResolver resolve, unsigned online_cpus,
                     CommResolver comm)
    : options_(options),
      resolve_(std::move(resolve)),
      online_cpus_(std::max(1u, online_cpus)),
      comm_(std::move(comm)) {}

const std::string& TaskDrain::comm_of(const TaskRecord& task) {
  TaskKey key{task.tgid, task.start_time_ns};
  if (auto it = comm_cache_next_.find(key); it != comm_cache_next_.end()) return it->second;
  if (auto it = comm_cache_.find(key); it != comm_cache_.end())
    return comm_cache_next_.emplace(key, std::move(it->second)).first->second;
  std::optional<std::string> now;
  if (comm_ && !task.exited && !task.kernel_thread) now = comm_(task.tgid);
  return comm_cache_next_.emplace(key, now ? std::move(*now) : task.comm).first->second;
}

const WorkloadId& TaskDrain::workload_of(const TaskRecord& task) {
  static const WorkloadId kKernel{"kernel", "kernel", "", "", ""};
  if (task.kernel_thread) return kKernel;
  if (auto it = workload_cache_next_.find(task.cgroup_id); it != workload_cache_next_.end())
    return it->second;
  // A cgroup id is never reused (kernfs ids only grow), so an answer stays right while its
  // tasks live; ids not seen for a drain are forgotten to bound memory.
  if (auto it = workload_cache_.find(task.cgroup_id); it != workload_cache_.end())
    return workload_cache_next_.emplace(task.cgroup_id, std::move(it->second)).first->second;
  return workload_cache_next_.emplace(task.cgroup_id, resolve_(task.cgroup_id)).first->second;
}

CpuTick TaskDrain::drain(const TaskMapSnapshot& snapshot, uint64_t now_ns) {
  CpuTick tick;
  std::unordered_map<TaskKey, uint64_t, TaskKeyHash> next_cpu_ns;
  next_cpu_ns.reserve(snapshot.tasks.size());

  if (!primed_) {
    for (const auto& task : snapshot.tasks)
      if (!task.exited) next_cpu_ns[{task.tgid, task.start_time_ns}] = task.cpu_ns;
    last_cpu_ns_ = std::move(next_cpu_ns);
    last_monotonic_ns_ = now_ns;
    last_idle_ns_ = snapshot.idle_ns;
    last_lost_records_ = snapshot.lost_records;
    last_lost_ns_ = snapshot.lost_ns;
    primed_ = true;
    return tick;
  }

  auto grown = [](uint64_t now, uint64_t before) { return now >= before ? now - before : 0; };
  tick.capacity_ns = uint64_t{online_cpus_} * grown(now_ns, last_monotonic_ns_);
  tick.idle_ns = grown(snapshot.idle_ns, last_idle_ns_);
  tick.records_lost = grown(snapshot.lost_records, last_lost_records_);
  tick.unaccounted_ns = grown(snapshot.lost_ns, last_lost_ns_);
  last_monotonic_ns_ = now_ns;
  last_idle_ns_ = snapshot.idle_ns;
  last_lost_records_ = snapshot.lost_records;
  last_lost_ns_ = snapshot.lost_ns;

  struct Pending {
    const TaskRecord* task;
    uint64_t cpu_ns;
    std::size_t workload;  // index into `workloads` below
  };
  std::vector<WorkloadCpu> workloads;
  std::unordered_map<std::string, std::size_t> index_of;  // several cgroups may be one workload
  std::unordered_map<uint64_t, std::size_t> index_of_group;
  std::vector<Pending> processes;

  for (const auto& task : snapshot.tasks) {
    TaskKey key{task.tgid, task.start_time_ns};
    uint64_t delta = task.cpu_ns;
    // A record below its last value was deleted and made again (an exiting group's last
    // slice): the new record holds only time not yet reported.
    if (auto it = last_cpu_ns_.find(key); it != last_cpu_ns_.end() && task.cpu_ns >= it->second)
      delta = task.cpu_ns - it->second;
    if (!task.exited) next_cpu_ns[key] = task.cpu_ns;
    if (delta == 0) continue;

    // Kernel threads share one workload whatever their cgroup; no cgroup id reaches ~0.
    uint64_t group = task.kernel_thread ? ~uint64_t{0} : task.cgroup_id;
    auto [by_group, new_group] = index_of_group.try_emplace(group, 0);
    if (new_group) {
      const WorkloadId& id = workload_of(task);
      auto [by_id, new_id] = index_of.try_emplace(workload_key(id), workloads.size());
      if (new_id) workloads.push_back(WorkloadCpu{.id = id});
      by_group->second = by_id->second;
    }
    workloads[by_group->second].cpu_ns += delta;
    if (options_.per_process) processes.push_back({&task, delta, by_group->second});
  }
  last_cpu_ns_ = std::move(next_cpu_ns);
  workload_cache_ = std::move(workload_cache_next_);
  workload_cache_next_.clear();

  // Past the cap the biggest users are kept, so the dropped remainder is as small as it can be.
  std::vector<std::size_t> order(workloads.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (workloads.size() > options_.max_workloads) {
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      if (workloads[a].cpu_ns != workloads[b].cpu_ns)
        return workloads[a].cpu_ns > workloads[b].cpu_ns;
      return workload_key(workloads[a].id) < workload_key(workloads[b].id);
    });
  }
  constexpr std::size_t kDropped = static_cast<std::size_t>(-1);
  std::vector<std::size_t> final_index(workloads.size(), kDropped);
  tick.workloads.reserve(std::min(workloads.size(), options_.max_workloads));
  for (std::size_t i : order) {
    if (tick.workloads.size() < options_.max_workloads) {
      final_index[i] = tick.workloads.size();
      tick.workloads.push_back(std::move(workloads[i]));
    } else {
      tick.unaccounted_ns += workloads[i].cpu_ns;
      ++tick.workloads_dropped;
    }
  }

  for (const auto& p : processes) {
    if (final_index[p.workload] == kDropped) continue;
    tick.processes.push_back(ProcessCpu{.pid = p.task->tgid,
                                        .start_time_ns = p.task->start_time_ns,
                                        .comm = comm_of(*p.task),
                                        .workload = final_index[p.workload],
                                        .cpu_ns = p.cpu_ns});
  }
  comm_cache_ = std::move(comm_cache_next_);
  comm_cache_next_.clear();
  return tick;
}

namespace {

class LightPrograms : public SchedAccountPrograms {
 public:
  wp_sched_account_program program{};
  LightPrograms() = default;
  LightPrograms(const LightPrograms&) = delete;
  LightPrograms& operator=(const LightPrograms&) = delete;
  ~LightPrograms() override { wp_sched_account_program_destroy(&program); }
  int tasks_map_fd() const override { return program.tasks_map_fd; }
  int counters_map_fd() const override { return program.counters_map_fd; }
  int switch_program_fd() const override { return program.switch_program_fd; }
};

struct SkeletonDeleter {
  void operator()(::sched_account_bpf* skeleton) const { sched_account_bpf__destroy(skeleton); }
};

class LibbpfPrograms : public SchedAccountPrograms {
 public:
  explicit LibbpfPrograms(std::unique_ptr<::sched_account_bpf, SkeletonDeleter> skeleton)
      : skeleton_(std::move(skeleton)) {}
  int tasks_map_fd() const override { return bpf_map__fd(skeleton_->maps.wp_tasks); }
  int counters_map_fd() const override { return bpf_map__fd(skeleton_->maps.wp_counters); }
  int switch_program_fd() const override {
    return bpf_program__fd(skeleton_->progs.wp_sched_switch);
  }

 private:
  std::unique_ptr<::sched_account_bpf, SkeletonDeleter> skeleton_;
};

/// libbpf's skeleton: it parses the kernel's BTF in user space (some 11 MiB of heap for the
/// load), but needs nothing of the kernel beyond the programs themselves.
Result<std::unique_ptr<SchedAccountPrograms>> load_with_libbpf(uint64_t loaded_at_ns,
                                                               std::size_t max_tasks) {
  capture_libbpf_log();
  std::unique_ptr<::sched_account_bpf, SkeletonDeleter> skeleton(sched_account_bpf__open());
  if (!skeleton) return load_error(errno, "opening the eBPF object");
  skeleton->rodata->wp_loaded_at_ns = loaded_at_ns;
  if (int err = bpf_map__set_max_entries(skeleton->maps.wp_tasks, static_cast<__u32>(max_tasks)))
    return load_error(-err, "sizing the task map");
  if (int err = sched_account_bpf__load(skeleton.get()))
    return load_error(-err, "loading (verifier)");
  if (int err = sched_account_bpf__attach(skeleton.get())) return load_error(-err, "attaching");
  return std::unique_ptr<SchedAccountPrograms>(new LibbpfPrograms(std::move(skeleton)));
}

/// The light skeleton first: its loader program relocates the programs in the kernel, against
/// the kernel's own BTF, so the agent's heap never holds that BTF. Its loader needs a kernel
/// with BPF_PROG_TYPE_SYSCALL and in-kernel CO-RE (5.17 and later); where it fails, for any
/// reason, libbpf's skeleton loads as before and its error is the one reported.
Result<std::unique_ptr<SchedAccountPrograms>> load_programs(std::size_t max_tasks) {
  uint64_t loaded_at_ns = monotonic_ns();
  auto light = std::make_unique<LightPrograms>();
  if (wp_sched_account_program_load(loaded_at_ns, static_cast<uint32_t>(max_tasks),
                                    &light->program) == 0)
    return std::unique_ptr<SchedAccountPrograms>(std::move(light));
  return load_with_libbpf(loaded_at_ns, max_tasks);
}

}  // namespace

BpfAccounting::BpfAccounting(std::unique_ptr<SchedAccountPrograms> programs,
                             std::unique_ptr<TaskMapReader> reader, TaskDrain drain)
    : programs_(std::move(programs)), reader_(std::move(reader)), drain_(std::move(drain)) {}

Result<std::unique_ptr<BpfAccounting>> BpfAccounting::load(const HostPaths& paths,
                                                           const AccountingOptions& options,
                                                           WorkloadResolver resolve) {
  if (auto refused = precondition_error(paths)) return *refused;
  auto cpus = online_cpu_count(paths);
  if (!cpus) return cpus.error();

  std::size_t max_tasks = std::max<std::size_t>(1, options.max_tasks);
  auto programs = load_programs(max_tasks);
  if (!programs) return programs.error();

  auto reader = std::make_unique<KernelTaskMapReader>((*programs)->tasks_map_fd(),
                                                      (*programs)->counters_map_fd(), max_tasks);
  CommResolver comm = [paths](uint32_t tgid) -> std::optional<std::string> {
    auto text = read_text(paths.proc(std::to_string(tgid) + "/comm"), 64);
    if (!text) return std::nullopt;
    if (!text->empty() && text->back() == '\n') text->pop_back();
    return std::move(*text);
  };
  return std::unique_ptr<BpfAccounting>(
      new BpfAccounting(std::move(*programs), std::move(reader),
                        TaskDrain(options, std::move(resolve), *cpus, std::move(comm))));
}

CpuTick BpfAccounting::drain() {
  TaskMapSnapshot snapshot = reader_->read();
  return drain_.drain(snapshot, monotonic_ns());
}

bool BpfAccounting::kernel_reads_allowed() const {
  wp_task_key key{};
  if (bpf_map_get_next_key(programs_->tasks_map_fd(), nullptr, &key) != 0 && errno != ENOENT) {
    return false;
  }
  bpf_prog_info info{};
  __u32 len = sizeof info;
  return bpf_obj_get_info_by_fd(programs_->switch_program_fd(), &info, &len) == 0;
}

BpfProgramStats BpfAccounting::sched_switch_stats() const {
  BpfProgramStats stats;
  bpf_prog_info info{};
  __u32 len = sizeof info;
  if (bpf_obj_get_info_by_fd(programs_->switch_program_fd(), &info, &len) != 0) return stats;
  stats.instructions = info.xlated_prog_len / 8;
  stats.run_time_ns = info.run_time_ns;
  stats.run_count = info.run_cnt;
  return stats;
}

std::string BpfAccounting::kernel_support_report(const HostPaths& paths) {
  std::ostringstream out;
  auto btf = paths.sys("kernel/btf/vmlinux");
  std::error_code ec;
  out << "BTF: " << btf.string()
      << (std::filesystem::exists(btf, ec) ? " present"
                                           : " absent (kernel without CONFIG_DEBUG_INFO_BTF)")
      << "\n";
  if (auto caps = effective_capabilities(paths)) {
    out << "privileges: euid " << geteuid() << ", CAP_BPF "
        << (has_cap(*caps, kCapBpf) ? "yes" : "no") << ", CAP_PERFMON "
        << (has_cap(*caps, kCapPerfmon) ? "yes" : "no") << ", CAP_SYS_ADMIN "
        << (has_cap(*caps, kCapSysAdmin) ? "yes" : "no") << "\n";
  } else {
    out << "privileges: unknown (" << caps.error().message() << ")\n";
  }
  auto lockdown_path = paths.sys("kernel/security/lockdown");
  if (auto lockdown = read_text(lockdown_path))
    out << "lockdown: " << lockdown_mode(*lockdown) << "\n";
  else
    out << "lockdown: not enforced (" << lockdown_path.string() << " absent)\n";
  out << pmu_cycles_finding() << "\n";
  if (auto refused = precondition_error(paths))
    out << "eBPF accounting: unavailable: " << refused->message() << "\n";
  else
    out << "eBPF accounting: preconditions met (the load itself may still be refused)\n";
  return out.str();
}

Result<std::unique_ptr<CpuAccounting>> load_bpf_accounting(const HostPaths& paths,
                                                           const AccountingOptions& options,
                                                           WorkloadResolver resolve) {
  auto loaded = BpfAccounting::load(paths, options, std::move(resolve));
  if (!loaded) return loaded.error();
  return std::unique_ptr<CpuAccounting>(std::move(*loaded));
}

}  // namespace wattprobe
