// SPDX-License-Identifier: GPL-2.0
/* Per task group on-CPU time, charged at every switch-out, and per-CPU idle time.
 * tp_btf arguments are typed kernel pointers: plain field loads (CO-RE relocated through
 * vmlinux.h's preserve_access_index) cost far less than a bpf_probe_read_kernel() per field. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sched_account.h"

char LICENSE[] SEC("license") = "GPL";

/* include/linux/sched.h; the values are ABI for /proc/<pid>/stat flags and have never moved. */
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000
#define EEXIST 17 /* uapi errno, not in vmlinux.h */

/* The loader sizes it from AccountingOptions before load. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 16384);
  __type(key, struct wp_task_key);
  __type(value, struct wp_task_record);
} wp_tasks SEC(".maps");

/* Per thread: how much of its se.sum_exec_runtime has been charged to its group. Charging the
 * scheduler's own runtime rather than timestamps between switches makes the figure the one the
 * kernel reports in cpu.stat and /proc (no steal or IRQ time where the kernel excludes them). */
struct {
  __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, int);
  __type(value, __u64);
} wp_thread_charged SEC(".maps");

/* CLOCK_MONOTONIC at load: threads started later are charged from their first nanosecond. */
const volatile __u64 wp_loaded_at_ns = 0;

/* When the current task went on this CPU (ns, bpf_ktime_get_ns). 0 = not seen yet. */
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} wp_switch_in_ns SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, WP_COUNTER_COUNT);
  __type(key, __u32);
  __type(value, __u64);
} wp_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 value) {
  __u64* c = bpf_map_lookup_elem(&wp_counters, &slot);
  if (c) *c += value; /* per-CPU slot: no other writer */
}

/* Once the last thread has passed do_exit()'s atomic_dec_and_test(&signal->live), any later
 * charge to the group belongs to a record user space must delete after reading. */
static __always_inline bool group_dead(struct task_struct* task) {
  return (task->flags & PF_EXITING) && task->signal->live.counter == 0;
}

static __always_inline void task_key(struct task_struct* task, struct wp_task_key* key) {
  key->tgid = task->tgid;
  key->pad = 0;
  key->start_time_ns = task->group_leader->start_time;
}

static __always_inline void charge(struct task_struct* prev, __u64 delta) {
  struct wp_task_key key;
  task_key(prev, &key);
  __u32 extra_flags = group_dead(prev) ? WP_TASK_EXITED : 0;
  /* At sched_switch current is still prev, so this is prev's cgroup. */
  __u64 cgroup_id = bpf_get_current_cgroup_id();

  struct wp_task_record* rec = bpf_map_lookup_elem(&wp_tasks, &key);
  if (rec) {
    __sync_fetch_and_add(&rec->cpu_ns, delta);
    rec->cgroup_id = cgroup_id;
    if (extra_flags) rec->flags |= extra_flags;
    return;
  }

  struct wp_task_record fresh = {};
  fresh.cpu_ns = delta;
  fresh.cgroup_id = cgroup_id;
  fresh.flags = extra_flags;
  if (prev->flags & PF_KTHREAD) fresh.flags |= WP_TASK_KTHREAD;
  BPF_CORE_READ_STR_INTO(&fresh.comm, prev, group_leader, comm);
  long err = bpf_map_update_elem(&wp_tasks, &key, &fresh, BPF_NOEXIST);
  if (err == -EEXIST) {
    /* Another CPU made it between our lookup and update. */
    rec = bpf_map_lookup_elem(&wp_tasks, &key);
    if (rec) {
      __sync_fetch_and_add(&rec->cpu_ns, delta);
      return;
    }
  }
  if (err) {
    count(WP_COUNTER_LOST_RECORDS, 1);
    count(WP_COUNTER_LOST_NS, delta);
  }
}

SEC("tp_btf/sched_switch")
int BPF_PROG(wp_sched_switch, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  __u64* switch_in = bpf_map_lookup_elem(&wp_switch_in_ns, &zero);
  if (!switch_in) return 0;
  __u64 now = bpf_ktime_get_ns();
  __u64 since = *switch_in;
  *switch_in = now;
  /* The first switch seen on a CPU has no start: the slice began before the program loaded. */
  if (since == 0 || now <= since) return 0;
  __u64 delta = now - since;

  if (prev->pid == 0) {
    count(WP_COUNTER_IDLE_NS, delta);
    return 0;
  }
  /* prev's runtime was brought up to date by put_prev_task() just before this tracepoint. */
  __u64 runtime = prev->se.sum_exec_runtime;
  __u64* charged = bpf_task_storage_get(&wp_thread_charged, prev, 0,
                                        BPF_LOCAL_STORAGE_GET_F_CREATE);
  if (charged) {
    /* First sight of a thread older than the program: only this slice is ours to charge. */
    if (*charged == 0 && prev->start_time < wp_loaded_at_ns)
      *charged = runtime > delta ? runtime - delta : 0;
    delta = runtime > *charged ? runtime - *charged : 0;
    *charged = runtime;
  }
  if (delta) charge(prev, delta);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(wp_sched_process_exit, struct task_struct* task) {
  if (!group_dead(task)) return 0;
  struct wp_task_key key;
  task_key(task, &key);
  struct wp_task_record* rec = bpf_map_lookup_elem(&wp_tasks, &key);
  /* The final switch-out still follows and will charge (and mark) the record. */
  if (rec) rec->flags |= WP_TASK_EXITED;
  return 0;
}
