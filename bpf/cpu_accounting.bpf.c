// SPDX-License-Identifier: GPL-2.0
/* Per task group on-CPU time, charged at every switch-out, and per-CPU idle time.
 *
 * The sched_switch hook runs on every context switch, so it avoids every costly step it can
 * (measured on a KVM guest with tests/bench/overhead, bpf_stats on): no clock helper
 * (bpf_ktime_get_ns cost ~150 ns there), no per-task storage (~70 ns), no hash map (~130 ns),
 * and no write to a cache line another CPU writes too (~130 ns).
 * - A slice's CPU time is prev's se.sum_exec_runtime now minus its value when prev was switched
 *   in, which the hook saved per CPU then: the scheduler's own runtime, the figure cpu.stat and
 *   /proc report, whatever the scheduling class.
 * - Idle time is measured on the scheduler's clock_task, read from the task on the other side of
 *   the switch: its se.exec_start is the rq clock_task of this very switch (put_prev_task()
 *   and set_next_task() just set it).
 * - The group's record is found by open addressing in an array (cpu_accounting.h).
 * - Consecutive slices of one group on a CPU add up in that CPU's own memory and reach the
 *   shared record when another group's task runs there, when a thread of the group exits, or
 *   at WP_PENDING_MAX_NS. Threads of one process switching on several CPUs would otherwise move
 *   the record's cache line between CPUs at every switch.
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

/* A CPU keeps at most this much of a group's time before adding it to the group's record, so
 * a drain sees all but this much per CPU; the rest arrives a drain later, never lost (a CPU
 * taken offline keeps it until it is back). */
#define WP_PENDING_MAX_NS 1000000ull

/* What is on this CPU since the last switch: the task, and its se.sum_exec_runtime then, or for
 * the idle task the clock_task then (task 0: no switch seen yet on this CPU); and the time of
 * the group last charged here that its record has not had yet. */
struct wp_on_cpu {
  __u64 task;
  __u64 since_ns;
  __u64 pending_ns;
  __u64 pending_start; /* the pending group: leader start time, tgid and record slot */
  __u32 pending_tgid;
  __u32 pending_slot;
  __u64 pending_cgroup;
  __u32 pending_flags; /* WP_TASK_KTHREAD, for a record made again late */
  __u32 pad;
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

#define WP_NO_SLOT 0xffffffffu

struct wp_group_key {
  __u32 tgid;
  __u32 home;  /* the group's home slot */
  __u64 start; /* group leader's start_time */
};

static __always_inline struct wp_group_key group_key(__u32 tgid, __u64 start) {
  struct wp_group_key key = {
      .tgid = tgid, .home = wp_home_slot(tgid, wp_slots_log2), .start = start};
  return key;
}

static __always_inline struct wp_task_record* record_at(__u32 slot) {
  return bpf_map_lookup_elem(&wp_tasks, &slot);
}

/* The slot of the group's record, or WP_NO_SLOT with *first_free the first free probe
 * (WP_MAX_PROBES: none). */
static __always_inline __u32 find_group(const struct wp_group_key* key, __u32* first_free) {
  __u32 mask = (1u << wp_slots_log2) - 1;
  *first_free = WP_MAX_PROBES;
  for (__u32 probe = 0; probe < WP_MAX_PROBES; probe++) {
    __u32 slot = (key->home + probe) & mask;
    struct wp_task_record* rec = record_at(slot);
    if (!rec) return WP_NO_SLOT;
    __u64 owner = rec->start_time_ns;
    /* tgid 0: a record being made by another CPU, for a group that started in the same ns. */
    if (owner == key->start && (rec->tgid == key->tgid || rec->tgid == 0)) return slot;
    /* A free slot ends no search: a slot freed later may lie before the group's record. */
    if (owner == 0 && *first_free == WP_MAX_PROBES) *first_free = probe;
  }
  return WP_NO_SLOT;
}

/* Claims the first free slot from probe `from` on for the group: its slot, or WP_NO_SLOT when
 * none is left in reach. *made: this call claimed it, and the caller fills it and publishes it.
 * Two CPUs making one group's record at once may, rarely, make two; user space merges records
 * of one identity. */
static __always_inline __u32 claim_slot(const struct wp_group_key* key, __u32 from, bool* made) {
  __u32 mask = (1u << wp_slots_log2) - 1;
  *made = false;
  for (__u32 probe = from; probe < WP_MAX_PROBES; probe++) {
    __u32 slot = (key->home + probe) & mask;
    struct wp_task_record* rec = record_at(slot);
    if (!rec) return WP_NO_SLOT;
    if (rec->start_time_ns != 0) continue;
    __u64 was = __sync_val_compare_and_swap(&rec->start_time_ns, 0, key->start);
    if (was == key->start) return slot; /* another CPU made it a moment ago */
    if (was != 0) continue;             /* another group took it */
    /* cpu_ns is already 0: user space zeroed it when it freed the slot. Not zeroing it here
     * keeps the time of another CPU that found this record by its start time a moment ago. */
    *made = true;
    return slot;
  }
  return WP_NO_SLOT;
}

/* tgid last: a reader skips the record until then. BPF has no store-release before clang 21
 * and kernel 6.15; a compiler barrier orders the stores on x86, and a weakly ordered CPU can at
 * worst show one drain the comm or kthread flag of a record being made. */
static __always_inline void publish(struct wp_task_record* rec, __u32 tgid) {
  asm volatile("" ::: "memory");
  rec->tgid = tgid;
}

static __always_inline void lose(__u64 ns) {
  count(WP_COUNTER_LOST_RECORDS, 1);
  count(WP_COUNTER_LOST_NS, ns);
}

/* Adds this CPU's pending time to its group's record. */
static __always_inline void flush(struct wp_on_cpu* cpu, bool exited) {
  __u64 ns = cpu->pending_ns;
  if (!ns) return;
  cpu->pending_ns = 0;
  struct wp_task_record* rec = record_at(cpu->pending_slot);
  if (!rec) return;
  __u32 tgid = rec->tgid;
  if (rec->start_time_ns != cpu->pending_start || (tgid != cpu->pending_tgid && tgid != 0)) {
    /* User space freed the record, which it does only to an exited group's once drained: the
     * time goes to a new record, marked exited too, as an exiting group's last slice does. */
    struct wp_group_key key = group_key(cpu->pending_tgid, cpu->pending_start);
    __u32 first_free;
    bool made;
    __u32 slot = find_group(&key, &first_free);
    if (slot == WP_NO_SLOT) slot = claim_slot(&key, first_free, &made);
    rec = slot == WP_NO_SLOT ? NULL : record_at(slot);
    if (!rec) {
      lose(ns);
      return;
    }
    if (slot != WP_NO_SLOT && made) {
      rec->flags = cpu->pending_flags;
      publish(rec, key.tgid);
    }
    exited = true;
  }
  __sync_fetch_and_add(&rec->cpu_ns, ns);
  /* Only a change is written: a line every CPU only reads stays in all their caches. */
  if (rec->cgroup_id != cpu->pending_cgroup) rec->cgroup_id = cpu->pending_cgroup;
  if (exited) rec->flags |= WP_TASK_EXITED;
}

static __always_inline void charge(struct task_struct* prev, __u64 delta, struct wp_on_cpu* cpu) {
  __u32 tgid = prev->tgid;
  __u64 start = prev->group_leader->start_time;
  if (cpu->pending_tgid != tgid || cpu->pending_start != start) {
    flush(cpu, false);
    struct wp_group_key key = group_key(tgid, start);
    __u32 first_free;
    __u32 slot = find_group(&key, &first_free);
    if (slot == WP_NO_SLOT) {
      bool made;
      slot = claim_slot(&key, first_free, &made);
      struct wp_task_record* rec = slot == WP_NO_SLOT ? NULL : record_at(slot);
      if (rec && made) {
        rec->flags = (prev->flags & PF_KTHREAD) ? WP_TASK_KTHREAD : 0;
        BPF_CORE_READ_STR_INTO(&rec->comm, prev, group_leader, comm);
        publish(rec, tgid);
      }
    }
    if (slot == WP_NO_SLOT) {
      lose(delta);
      return;
    }
    cpu->pending_tgid = tgid;
    cpu->pending_start = start;
    cpu->pending_slot = slot;
    cpu->pending_flags = (prev->flags & PF_KTHREAD) ? WP_TASK_KTHREAD : 0;
  }
  cpu->pending_ns += delta;
  /* The default hierarchy's cgroup of prev, read through its css_set as
   * bpf_get_current_cgroup_id() does (at sched_switch current is still prev). */
  cpu->pending_cgroup = prev->cgroups->dfl_cgrp->kn->id;
  /* An exiting thread's time is in its record before the group can be drained as exited. */
  if (prev->flags & PF_EXITING)
    flush(cpu, group_dead(prev));
  else if (cpu->pending_ns >= WP_PENDING_MAX_NS)
    flush(cpu, false);
}

/* Another group's task runs here next: the pending time goes to its record now rather than
 * after that task's slice, however long. */
static __always_inline void flush_before(struct task_struct* next, struct wp_on_cpu* cpu) {
  if (cpu->pending_ns && next->pid != 0 && next->tgid != cpu->pending_tgid) flush(cpu, false);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(wp_sched_switch, bool preempt, struct task_struct* prev, struct task_struct* next) {
  __u32 zero = 0;
  struct wp_on_cpu* cpu = bpf_map_lookup_elem(&wp_on_cpu, &zero);
  if (!cpu) return 0;
  __u64 was_task = cpu->task, since = cpu->since_ns;
  /* The first switch seen on a CPU has no start: the slice began before the program loaded. */
  bool known = was_task == (__u64)prev;

  if (prev->pid == 0) {
    /* Idle to a task: set_next_task() stamped next's exec_start with this switch's clock. */
    __u64 now = next->se.exec_start;
    cpu->task = (__u64)next;
    cpu->since_ns = next->se.sum_exec_runtime;
    if (known && now > since) count(WP_COUNTER_IDLE_NS, now - since);
    flush_before(next, cpu);
    return 0;
  }
  /* prev's runtime was brought up to date by put_prev_task() just before this tracepoint. */
  __u64 runtime = prev->se.sum_exec_runtime;
  __u64 delta = known && runtime > since ? runtime - since : 0;
  cpu->task = (__u64)next;
  /* A task to idle: update_curr() stamped prev's exec_start with this switch's clock. */
  cpu->since_ns = next->pid == 0 ? prev->se.exec_start : next->se.sum_exec_runtime;
  if (delta) charge(prev, delta, cpu);
  flush_before(next, cpu);
  return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(wp_sched_process_exit, struct task_struct* task) {
  if (!group_dead(task)) return 0;
  struct wp_group_key key = group_key(task->tgid, task->group_leader->start_time);
  __u32 first_free;
  __u32 slot = find_group(&key, &first_free);
  struct wp_task_record* rec = slot == WP_NO_SLOT ? NULL : record_at(slot);
  /* The final switch-out still follows and will charge (and mark) the record, or make a new one
   * holding only that slice if user space freed this one in between. */
  if (rec) rec->flags |= WP_TASK_EXITED;
  return 0;
}
