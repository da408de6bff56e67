// SPDX-License-Identifier: GPL-2.0
/* Per task group on-CPU time, charged at every switch-out, and per-CPU idle time.
 *
 * The sched_switch hook runs on every context switch, so it avoids every costly step it can
 * (measured on a KVM guest with tests/bench/overhead, bpf_stats on): no clock helper
 * (bpf_ktime_get_ns cost ~150 ns there), no per-task storage (~70 ns), no hash map (~130 ns).
 * - A slice's CPU time is prev's se.sum_exec_runtime now minus its value when prev was switched
 *   in, which the hook saved per CPU then: the scheduler's own runtime, the figure cpu.stat and
 *   /proc report, whatever the scheduling class.
 * - Idle time is measured on the scheduler's clock_task, read from the task on the other side of
 *   the switch: its se.exec_start is the rq clock_task of this very switch (put_prev_task()
 *   and set_next_task() just set it).
 * - The group's record is found by open addressing in an array (cpu_accounting.h).
 * tp_btf arguments are typed kernel pointers: plain field loads (CO-RE relocated through
 * vmlinux.h's preserve_access_index) cost far less than a bpf_probe_read_kernel() per field. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "cpu_accounting.h"

char LICENSE[] SEC("license") = "GPL";

/* include/linux/sched.h; the values are ABI for /proc/<pid>/stat flags and have never moved. */
#define PF_EXITING 0x00000004
#define PF_KTHREAD 0x00200000

/* log2 of wp_tasks' max_entries, which the loader sets (a power of two) before load. */
const volatile __u32 wp_slots_log2 = 14;

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 1 << 14);
  __type(key, __u32);
  __type(value, struct wp_task_record);
} wp_tasks SEC(".maps");

/* What is on this CPU since the last switch: the task, and its se.sum_exec_runtime then, or for
 * the idle task the clock_task then. task 0: no switch seen yet on this CPU. */
struct wp_on_cpu {
  __u64 task;
  __u64 since_ns;
};

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct wp_on_cpu);
} wp_on_cpu SEC(".maps");

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
 * charge to the group belongs to a record user space must free after reading. */
static __always_inline bool group_dead(struct task_struct* task) {
  return (task->flags & PF_EXITING) && task->signal->live.counter == 0;
}

struct wp_group_key {
  __u32 tgid;
  __u32 home;  /* the group's home slot */
  __u64 start; /* group leader's start_time */
};

static __always_inline struct wp_group_key group_key(struct task_struct* task) {
  struct wp_group_key key = {.tgid = task->tgid, .start = task->group_leader->start_time};
  key.home = wp_home_slot(key.tgid, wp_slots_log2);
  return key;
}

/* The group's record, or NULL with *first_free the first free probe (WP_MAX_PROBES: none). */
static __always_inline struct wp_task_record* find_group(const struct wp_group_key* key,
                                                         __u32* first_free) {
  __u32 mask = (1u << wp_slots_log2) - 1;
  *first_free = WP_MAX_PROBES;
  for (__u32 probe = 0; probe < WP_MAX_PROBES; probe++) {
    __u32 slot = (key->home + probe) & mask;
    struct wp_task_record* rec = bpf_map_lookup_elem(&wp_tasks, &slot);
    if (!rec) return NULL;
    __u64 owner = rec->start_time_ns;
    /* tgid 0: a record being made by another CPU, for a group that started in the same ns. */
    if (owner == key->start && (rec->tgid == key->tgid || rec->tgid == 0)) return rec;
    /* A free slot ends no search: a slot freed later may lie before the group's record. */
    if (owner == 0 && *first_free == WP_MAX_PROBES) *first_free = probe;
  }
  return NULL;
}

/* Claims the first free slot from probe `from` on for the group. NULL: none left in reach.
 * Two CPUs making one group's record at once may, rarely, make two; user space merges records
 * of one identity. */
static __always_inline struct wp_task_record* make_group(struct task_struct* task,
                                                         const struct wp_group_key* key,
                                                         __u32 from) {
  __u32 mask = (1u << wp_slots_log2) - 1;
  for (__u32 probe = from; probe < WP_MAX_PROBES; probe++) {
    __u32 slot = (key->home + probe) & mask;
    struct wp_task_record* rec = bpf_map_lookup_elem(&wp_tasks, &slot);
    if (!rec) return NULL;
    if (rec->start_time_ns != 0) continue;
    __u64 was = __sync_val_compare_and_swap(&rec->start_time_ns, 0, key->start);
    if (was == key->start) return rec; /* another CPU made it a moment ago */
    if (was != 0) continue;            /* another group took it */
    /* cpu_ns is already 0: user space zeroed it when it freed the slot. Not zeroing it here
     * keeps the time of another CPU that found this record by its start time a moment ago. */
    rec->flags = (task->flags & PF_KTHREAD) ? WP_TASK_KTHREAD : 0;
    BPF_CORE_READ_STR_INTO(&rec->comm, task, group_leader, comm);
    /* tgid last: a reader skips the record until then. BPF has no store-release before clang
     * 21 and kernel 6.15; a compiler barrier orders the stores on x86, and a weakly ordered CPU
     * can at worst show one drain the comm or kthread flag of a record being made. */
    asm volatile("" ::: "memory");
    rec->tgid = key->tgid;
    return rec;
  }
  return NULL;
}

static __always_inline void charge(struct task_struct* prev, __u64 delta) {
  struct wp_group_key key = group_key(prev);
  __u32 first_free;
  struct wp_task_record* rec = find_group(&key, &first_free);
  if (!rec) rec = make_group(prev, &key, first_free);
  if (!rec) {
    count(WP_COUNTER_LOST_RECORDS, 1);
    count(WP_COUNTER_LOST_NS, delta);
    return;
  }
  __sync_fetch_and_add(&rec->cpu_ns, delta);
  /* The default hierarchy's cgroup of prev, read through its css_set as
   * bpf_get_current_cgroup_id() does (at sched_switch current is still prev). */
  rec->cgroup_id = prev->cgroups->dfl_cgrp->kn->id;
  if (group_dead(prev)) rec->flags |= WP_TASK_EXITED;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(wp_sched_switch, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  struct wp_on_cpu* on_cpu = bpf_map_lookup_elem(&wp_on_cpu, &zero);
  if (!on_cpu) return 0;
  __u64 was_task = on_cpu->task, since = on_cpu->since_ns;
  /* The first switch seen on a CPU has no start: the slice began before the program loaded. */
  bool known = was_task == (__u64)prev;
  __u64 delta = 0;

  if (prev->pid == 0) {
    /* Idle to a task: set_next_task() stamped next's exec_start with this switch's clock. */
    __u64 now = next->se.exec_start;
    on_cpu->task = (__u64)next;
    on_cpu->since_ns = next->se.sum_exec_runtime;
    if (known && now > since) count(WP_COUNTER_IDLE_NS, now - since);
    return 0;
  }
  /* prev's runtime was brought up to date by put_prev_task() just before this tracepoint. */
  __u64 runtime = prev->se.sum_exec_runtime;
  if (known && runtime > since) delta = runtime - since;
  on_cpu->task = (__u64)next;
  /* A task to idle: update_curr() stamped prev's exec_start with this switch's clock. */
  on_cpu->since_ns = next->pid == 0 ? prev->se.exec_start : next->se.sum_exec_runtime;
  if (delta) charge(prev, delta);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(wp_sched_process_exit, struct task_struct* task) {
  if (!group_dead(task)) return 0;
  struct wp_group_key key = group_key(task);
  __u32 first_free;
  struct wp_task_record* rec = find_group(&key, &first_free);
  /* The final switch-out still follows and will charge (and mark) the record, or make a new one
   * holding only that slice if user space freed this one in between. */
  if (rec) rec->flags |= WP_TASK_EXITED;
  return 0;
}
