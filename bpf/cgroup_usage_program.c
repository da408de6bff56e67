#include "bpf/cgroup_usage_program.h"

/* The light skeleton's base header uses errno and its codes without including them. */
#include <errno.h>
#include <string.h>

#include "bpf/cgroup_usage.lskel.h"

int wp_cgroup_usage_program_load(bool flush_takes_css, uint32_t max_cgroups, char* log,
                                 uint32_t log_size, struct wp_cgroup_usage_program* out) {
  memset(out, 0, sizeof *out);
  if (log_size) log[0] = '\0';
  struct cgroup_usage_lskel* skel = cgroup_usage_lskel__open();
  if (!skel) return errno ? -errno : -ENOMEM;
  skel->rodata->wp_flush_takes_css = flush_takes_css;
  /* The loader program creates the map with this size instead of the object's. */
  skel->maps.wp_cgroups.max_entries = max_cgroups;
  if (log_size) {
    /* A log is asked only to explain a failure: with one, a load whose log overflows the
     * buffer fails (ENOSPC), even when the verifier accepted the program. */
    skel->ctx.log_level = 1;
    skel->ctx.log_size = log_size;
    skel->ctx.log_buf = (uint64_t)(uintptr_t)log;
  }
  int err = cgroup_usage_lskel__load(skel);
  if (err) {
    int saved = errno;
    cgroup_usage_lskel__destroy(skel);
    return err < 0 ? err : (saved ? -saved : -EINVAL);
  }
  if (log_size) log[0] = '\0';
  out->skeleton = skel;
  out->program_fd = skel->progs.wp_cgroup_usage.prog_fd;
  out->cgroups_map_fd = skel->maps.wp_cgroups.map_fd;
  out->visited = &skel->bss->wp_visited;
  out->cgroups_lost = (uint64_t*)&skel->bss->wp_cgroups_lost;
  return 0;
}

void wp_cgroup_usage_program_destroy(struct wp_cgroup_usage_program* program) {
  if (program->skeleton) cgroup_usage_lskel__destroy(program->skeleton);
  memset(program, 0, sizeof *program);
}
