// The floor under any eBPF figure of the overhead benchmark (tests/bench/overhead): an empty
// program (return 0) on the sched_switch raw tracepoint, the same dispatch path as wattprobe's
// tp_btf hook. With kernel.bpf_stats_enabled=1 its run_time_ns/run_cnt (in /proc/PID/fdinfo)
// is what the kernel's own dispatch and the statistics' two clock reads cost per event on this
// host, which no program can go under.
//
//   bpf_floor        loads and attaches it, prints "ready", holds it until SIGTERM or SIGINT.
//
// Exit 0; 1 when the kernel refuses (the reason goes to stderr), 2 on any argument.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace {

volatile sig_atomic_t g_stop = 0;

void on_stop(int) { g_stop = 1; }

}  // namespace

int main(int argc, char**) {
  if (argc != 1) {
    std::fprintf(stderr, "usage: bpf_floor\n");
    return 2;
  }
  const bpf_insn program[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = 0},
      {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
  };
  int prog = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, "wp_floor", "GPL", program,
                           sizeof program / sizeof program[0], nullptr);
  if (prog < 0) {
    std::fprintf(stderr, "bpf_floor: loading the empty program: %s\n", std::strerror(errno));
    return 1;
  }
  int link = bpf_raw_tracepoint_open("sched_switch", prog);
  if (link < 0) {
    std::fprintf(stderr, "bpf_floor: attaching to sched_switch: %s\n", std::strerror(errno));
    return 1;
  }
  // Blocked but for sigsuspend(), so a signal cannot land between the check and the wait.
  sigset_t stop_signals, others;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, &others);
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::printf("ready\n");
  std::fflush(stdout);
  while (!g_stop) sigsuspend(&others);
  close(link);
  close(prog);
  return 0;
}
