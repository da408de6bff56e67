// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup CPU time from what the kernel already keeps: every cgroup v2's rstat base stat, the
 * figure its cpu.stat usage_usec shows. No hook runs on the scheduler's path; this iterator runs
 * only when user space reads it, once a tick, and visits every cgroup once.
 * One flush of the root brings every cgroup's bstat up to date (css_rstat_flush walks only the
 * cgroups that ran since the last flush), then each cgroup's sum goes to the next slot of an
 * array that user space maps: no hash map update, no copy out. (A cgroup iterator's text output
 * cannot be read past one 32 KiB buffer, as cgroup_iter_seq_start refuses a second session.) */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "cgroup_usage.h"

char LICENSE[] SEC("license") = "GPL";

/* The flush is a sleepable kfunc: since 6.15 it takes the css (kernel/cgroup/rstat.c), from 6.1
 * to 6.14 the cgroup. Both are weak so that one object loads on either: the loader tells which
 * this kernel has (its BTF names one), and the verifier drops the other call as dead code. */
extern void css_rstat_flush(struct cgroup_subsys_state* css) __ksym __weak;
extern void cgroup_rstat_flush(struct cgroup* cgrp) __ksym __weak;
const volatile bool wp_flush_takes_css = true;

/* The loader sizes it before load. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(map_flags, BPF_F_MMAPABLE);
  __uint(max_entries, 65536);
  __type(key, __u32);
  __type(value, struct wp_cgroup_usage);
} wp_cgroups SEC(".maps");

/* Slots written by the walk; user space zeroes it before each. One walk runs at a time: the
 * agent reads from one thread. */
__u32 wp_visited = 0;
/* Cumulative: cgroups past the array's end (their time then stays with their parent). */
__u64 wp_cgroups_lost = 0;

SEC("iter.s/cgroup")
int wp_cgroup_usage(struct bpf_iter__cgroup* ctx) {
  struct cgroup* cgrp = ctx->cgroup;
  if (!cgrp) return 0; /* the call after the last cgroup */
  /* Pre-order from the root: the first cgroup is the root, whose flush covers the tree. */
  if (ctx->meta->seq_num == 0) {
    if (wp_flush_takes_css)
      css_rstat_flush(&cgrp->self);
    else
      cgroup_rstat_flush(cgrp);
  }

  __u32 slot = wp_visited;
  struct wp_cgroup_usage* usage = bpf_map_lookup_elem(&wp_cgroups, &slot);
  if (!usage) {
    wp_cgroups_lost++;
    return 0;
  }
  usage->id = cgrp->kn->id;
  usage->usage_ns = cgrp->bstat.cputime.sum_exec_runtime;
  struct cgroup_subsys_state* parent = cgrp->self.parent;
  usage->parent_id = parent ? BPF_CORE_READ(parent, cgroup, kn, id) : 0;
  wp_visited = slot + 1;
  return 0;
}
