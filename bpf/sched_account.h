/* Shared between bpf/sched_account.bpf.c and its loader: plain C, fixed-width kernel types. */
#ifndef WATTPROBE_BPF_CPU_ACCOUNTING_H
#define WATTPROBE_BPF_CPU_ACCOUNTING_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WP_COMM_LEN 16

/* A task group is its tgid plus the leader's start time, so a reused PID is a new key. */
struct wp_task_key {
  __u32 tgid;
  __u32 pad;
  __u64 start_time_ns; /* group leader's task_struct::start_time, CLOCK_MONOTONIC ns */
};

enum wp_task_flags {
  /* The whole group has exited; user space deletes the record once it has read it. */
  WP_TASK_EXITED = 1u << 0,
  /* PF_KTHREAD: labelled kind "kernel" whatever its cgroup. */
  WP_TASK_KTHREAD = 1u << 1,
};

struct wp_task_record {
  __u64 cpu_ns;    /* on-CPU time of every thread of the group since the record was made */
  __u64 cgroup_id; /* cgroup v2 id (kernfs node id) at the last switch-out */
  __u32 flags;     /* wp_task_flags */
  __u32 pad;
  char comm[WP_COMM_LEN]; /* the group leader's comm */
};

/* Slots of the per-CPU `wp_counters` array. */
enum wp_counter {
  WP_COUNTER_IDLE_NS = 0,      /* time the idle task (pid 0) was on the CPU */
  WP_COUNTER_LOST_RECORDS = 1, /* task map full: a switch-out that found no room */
  WP_COUNTER_LOST_NS = 2,      /* on-CPU time of those switch-outs */
  WP_COUNTER_COUNT = 3,
};

#endif
