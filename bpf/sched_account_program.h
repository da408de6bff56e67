/* bpf/sched_account.bpf.c loaded and attached through bpftool's light skeleton
 * (bpf/sched_account.lskel.h in the build folder), whose loader program relocates it inside the
 * kernel against the kernel's own BTF; the C face the loader calls, as C++ cannot compile the
 * light skeleton. */
#ifndef WATTPROBE_BPF_SCHED_ACCOUNT_PROGRAM_H
#define WATTPROBE_BPF_SCHED_ACCOUNT_PROGRAM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sched_account_lskel;

/* Descriptors owned by the skeleton. */
struct wp_sched_account_program {
  struct sched_account_lskel* skeleton;
  int tasks_map_fd;
  int counters_map_fd;
  int switch_program_fd; /* the sched_switch hook, for its statistics */
};

/* Loads both programs with `max_tasks` slots in the task map and attaches them. Returns 0 and
 * fills `out`, or a negative errno (the kernel's, or the light loader's). */
int wp_sched_account_program_load(uint64_t loaded_at_ns, uint32_t max_tasks,
                                  struct wp_sched_account_program* out);

/* Detaches and closes what wp_sched_account_program_load opened (nothing when it is null). */
void wp_sched_account_program_destroy(struct wp_sched_account_program* program);

#ifdef __cplusplus
}
#endif

#endif
