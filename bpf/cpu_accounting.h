/* Shared between bpf/cpu_accounting.bpf.c and its loader: plain C, fixed-width kernel types. */
#ifndef WATTPROBE_BPF_CPU_ACCOUNTING_H
#define WATTPROBE_BPF_CPU_ACCOUNTING_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WP_COMM_LEN 16

/* A task group's record sits in the `wp_tasks` array at the first free slot from
 * wp_home_slot(tgid) on, within WP_MAX_PROBES slots (open addressing). An array slot costs the
 * sched_switch hook a multiply and a load where a hash map lookup cost ~130 ns; user space reads
 * the array through mmap. */
#define WP_MAX_PROBES 32

/* Fibonacci hashing: tgids are sequential, the top bits of the product spread them. */
static inline __u32 wp_home_slot(__u32 tgid, __u32 slots_log2) {
  return slots_log2 ? (tgid * 2654435769u) >> (32 - slots_log2) : 0;
}

enum wp_task_flags {
  /* The whole group has exited; user space frees the slot once it has read it. */
  WP_TASK_EXITED = 1u << 0,
  /* PF_KTHREAD: labelled kind "kernel" whatever its cgroup. */
  WP_TASK_KTHREAD = 1u << 1,
};

/* One task group (process). A slot is free while start_time_ns is 0; the kernel claims it by a
 * compare-and-swap of start_time_ns, fills the rest, and writes tgid last, so a reader that sees
 * tgid 0 skips a record still being made. User space frees a slot by exchanging cpu_ns for 0,
 * clearing the rest, and writing start_time_ns 0 last. 64 bytes: one cache line per group, so
 * two groups charged on two CPUs never share a line. */
struct wp_task_record {
  __u64 cpu_ns;        /* on-CPU time of every thread of the group since the record was made */
  __u64 start_time_ns; /* group leader's task_struct::start_time, CLOCK_MONOTONIC; with tgid,
                          the identity across PID reuse */
  __u32 tgid;
  __u32 flags;            /* wp_task_flags */
  __u64 cgroup_id;        /* cgroup v2 id (kernfs node id) at the last switch-out */
  char comm[WP_COMM_LEN]; /* the group leader's comm */
  __u64 reserved[2];
};

/* Slots of the per-CPU `wp_counters` array. */
enum wp_counter {
  WP_COUNTER_IDLE_NS = 0,      /* time the idle task (pid 0) was on the CPU */
  WP_COUNTER_LOST_RECORDS = 1, /* no free slot near the group's home slot: a switch-out lost */
  WP_COUNTER_LOST_NS = 2,      /* on-CPU time of those switch-outs */
  WP_COUNTER_COUNT = 3,
};

#endif
