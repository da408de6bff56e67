/* bpf/cgroup_usage.bpf.c loaded through bpftool's light skeleton (bpf/cgroup_usage.lskel.h in
 * the build folder). The light skeleton is C that C++ cannot compile, so the loader calls this C
 * face of it. Its loader program resolves the iterator's attach point, the rstat kfunc and the
 * CO-RE relocations inside the kernel, against the kernel's own BTF: nothing parses the kernel's
 * BTF in user space, where libbpf's skeleton held some 11 MiB of heap while it did. */
#ifndef WATTPROBE_BPF_CGROUP_USAGE_PROGRAM_H
#define WATTPROBE_BPF_CGROUP_USAGE_PROGRAM_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cgroup_usage_lskel;

/* What the agent uses of a loaded program: descriptors owned by the skeleton, and the program's
 * two globals in its .bss, which the kernel maps into this process. */
struct wp_cgroup_usage_program {
  struct cgroup_usage_lskel* skeleton;
  int program_fd;         /* the iterator, to attach */
  int cgroups_map_fd;     /* the array of struct wp_cgroup_usage, to map */
  uint32_t* visited;      /* slots written by the last walk */
  uint64_t* cgroups_lost; /* cumulative: cgroups past the array's end */
};

/* Loads the program with `max_cgroups` slots; `flush_takes_css` picks the rstat flush kfunc
 * (css_rstat_flush since 6.15, else cgroup_rstat_flush). Returns 0 and fills `out`, or a negative
 * errno, with the verifier's log in `log` when `log_size` is not 0 (`log` is left empty on
 * success). */
int wp_cgroup_usage_program_load(bool flush_takes_css, uint32_t max_cgroups, char* log,
                                 uint32_t log_size, struct wp_cgroup_usage_program* out);

/* Closes what wp_cgroup_usage_program_load opened (nothing when the skeleton is null). */
void wp_cgroup_usage_program_destroy(struct wp_cgroup_usage_program* program);

#ifdef __cplusplus
}
#endif

#endif
