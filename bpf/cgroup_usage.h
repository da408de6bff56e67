/* Shared between bpf/cgroup_usage.bpf.c and its loader: plain C, fixed-width kernel types. */
#ifndef WATTPROBE_BPF_CGROUP_USAGE_H
#define WATTPROBE_BPF_CGROUP_USAGE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* One cgroup v2 as the kernel's rstat holds it at the last walk: slot N of the array is the
 * N-th cgroup visited. */
struct wp_cgroup_usage {
  __u64 id;        /* kernfs node id, the cgroup folder's inode number */
  __u64 usage_ns;  /* cgroup_base_stat sum_exec_runtime: the cgroup and its descendants, the
                      usage_usec of its cpu.stat in ns (0 for the root, whose cpu.stat the
                      kernel makes from kcpustat instead) */
  __u64 parent_id; /* 0 for the root */
};

#endif
