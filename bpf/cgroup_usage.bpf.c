// SPDX-License-Identifier: GPL-2.0
/* Per-cgroup CPU time from what the kernel already keeps: every cgroup v2's rstat base stat, the
 * figure its cpu.stat usage_usec shows. No hook runs on the scheduler's path; this iterator runs
 * only when user space reads it, once a tick, and visits every cgroup once.
 * One flush of the root brings every cgroup's bstat up to date (css_rstat_flush walks only the
 * cgroups that ran since the last flush), then each cgroup's sum is copied into a hash map that
 * user space reads in batches: a cgroup iterator's text output cannot be read past one 32 KiB
 * buffer (cgroup_iter_seq_start refuses a second session), a map has no such bound. */
#include "vmlinux.h"

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "cgroup_usage.h"

char LICENSE[] SEC("license") = "GPL";

/* Since 6.15 the flush takes the css (kernel/cgroup/rstat.c); a sleepable kfunc. */
extern void css_rstat_flush(struct cgroup_subsys_state* css) __ksym;

/* The loader sizes it from the workload cap before load. */
struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 65536);
  __type(key, __u64);
  __type(value, struct wp_cgroup_usage);
} wp_cgroups SEC(".maps");

/* Set by user space before each walk; entries not written by this walk belong to removed
 * cgroups. */
__u64 wp_walk = 0;
/* Cumulative: cgroups the map had no room for (their time then stays with their parent). */
__u64 wp_cgroups_lost = 0;

SEC("iter.s/cgroup")
int wp_cgroup_usage(struct bpf_iter__cgroup* ctx) {
  struct cgroup* cgrp = ctx->cgroup;
  if (!cgrp) return 0; /* the call after the last cgroup */
  /* Pre-order from the root: the first cgroup is the root, whose flush covers the tree. */
  if (ctx->meta->seq_num == 0) css_rstat_flush(&cgrp->self);

  __u64 id = cgrp->kn->id;
  struct wp_cgroup_usage usage = {};
  usage.usage_ns = cgrp->bstat.cputime.sum_exec_runtime;
  usage.walk = wp_walk;
  struct cgroup_subsys_state* parent = cgrp->self.parent;
  if (parent) usage.parent_id = BPF_CORE_READ(parent, cgroup, kn, id);
  if (bpf_map_update_elem(&wp_cgroups, &id, &usage, BPF_ANY) != 0)
    __sync_fetch_and_add(&wp_cgroups_lost, 1);
  return 0;
}
