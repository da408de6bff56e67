#include "bpf/sched_account_program.h"

/* The light skeleton's base header uses errno and its codes without including them. */
#include <errno.h>
#include <string.h>

#include "bpf/sched_account.lskel.h"

int wp_sched_account_program_load(uint64_t loaded_at_ns, uint32_t max_tasks,
                                  struct wp_sched_account_program* out) {
  memset(out, 0, sizeof *out);
  struct sched_account_lskel* skel = sched_account_lskel__open();
  if (!skel) return errno ? -errno : -ENOMEM;
  skel->rodata->wp_loaded_at_ns = loaded_at_ns;
  /* The loader program creates the map with this size instead of the object's. */
  skel->maps.wp_tasks.max_entries = max_tasks;
  int err = sched_account_lskel__load(skel);
  if (!err) err = sched_account_lskel__attach(skel);
  if (err) {
    int saved = errno;
    sched_account_lskel__destroy(skel);
    return err < 0 ? err : (saved ? -saved : -EINVAL);
  }
  out->skeleton = skel;
  out->tasks_map_fd = skel->maps.wp_tasks.map_fd;
  out->counters_map_fd = skel->maps.wp_counters.map_fd;
  out->switch_program_fd = skel->progs.wp_sched_switch.prog_fd;
  return 0;
}

void wp_sched_account_program_destroy(struct wp_sched_account_program* program) {
  if (program->skeleton) sched_account_lskel__destroy(program->skeleton);
  memset(program, 0, sizeof *program);
}
