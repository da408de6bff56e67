#include <prometheus/collectable.h>
#include <prometheus/text_serializer.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "agent/accounting_choice.h"
#include "agent/carbon/carbon.h"
#include "agent/cli/doctor.h"
#include "agent/cli/report.h"
#include "agent/cli/top.h"
#include "agent/liveness.h"
#include "agent/options.h"
#include "agent/privileges.h"
#include "agent/state/checkpoint.h"
#include "agent/state/ledger.h"
#include "agent/tick/tick_loop.h"
#include "collectors/registry.h"
#include "exporters/prometheus_pull.h"
#include "exporters/remote_write.h"

namespace wattprobe {
namespace {

/// Carbon follows the ticks: operational and embodied grams per workload.
class CarbonConsumer : public TickConsumer {
 public:
  /// Reads the grid API key (a root-only file is fine: privileges are still held), but starts
  /// no thread: see start().
  explicit CarbonConsumer(const Options& o) : carbon_(o.paths, o.carbon) {}
  /// The grid refresh thread fetches and parses network answers, so it starts only after the
  /// privilege drop; its events go to stderr, one line each.
  void start() {
    carbon_.start(
        [](const std::string& line) { std::fprintf(stderr, "wattprobe: %s\n", line.c_str()); });
  }
  ~CarbonConsumer() override { carbon_.stop(); }
  void on_tick(const EnergyTick& t) override { carbon_.on_tick(t); }
  void append_families(std::vector<Family>& out) const override { carbon_.append_families(out); }
  Carbon& carbon() { return carbon_; }

 private:
  Carbon carbon_;
};

/// The ledger sums each tick's joules and grams per period into the day files `report` reads.
/// It takes the tick's grams from Carbon, so it must be added after CarbonConsumer.
class LedgerConsumer : public TickConsumer {
 public:
  LedgerConsumer(const LedgerOptions& o, const Carbon& carbon) : ledger_(o, carbon) {}
  Result<bool> open() { return ledger_.open(wall_clock_ms()); }
  void on_tick(const EnergyTick& t) override { ledger_.on_tick(t); }
  void append_families(std::vector<Family>& out) const override { ledger_.append_families(out); }
  void flush() { ledger_.flush_all(); }

 private:
  Ledger ledger_;
};

/// Remote-write takes every published snapshot into its disk queue.
class RemoteWriteConsumer : public TickConsumer {
 public:
  explicit RemoteWriteConsumer(const RemoteWriteOptions& o) : rw_(o) {}
  Result<bool> start() { return rw_.start(); }
  /// The last tick is queued: the stop flush may begin while the rest of the agent shuts down.
  void begin_stop() { rw_.request_stop(); }
  void append_families(std::vector<Family>& out) const override { rw_.append_families(out); }
  void on_snapshot(const SnapshotPtr& s) override { rw_.enqueue(*s); }

 private:
  RemoteWrite rw_;
};

constexpr const char* kUsage =
    "usage: wattprobe <command> [options]\n"
    "  run      the daemon: measure, attribute, export (/metrics)\n"
    "  doctor   which energy sources and accounting this host offers, and why not\n"
    "  checkpoint-dump  the totals `run` would restore from --state-dir, as /metrics series\n"
    "  report   totals from the ledger over a period (`wattprobe report --help`)\n"
    "  top      live per-workload watts, CO2e rate and CPU share in the terminal\n"
    "  --help   this text; `wattprobe run --help` lists the options\n"
    "  --version\n";

std::string metrics_url(const std::string& listen, int port) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  return "http://" + host + ":" + std::to_string(port) + "/metrics";
}

int run(const Options& options) {
  // Block the stop signals before any thread starts, so only the waiter below receives them.
  // SIGHUP stops like SIGTERM: its default action would kill the agent without the final
  // checkpoint and ledger flush, and a reload would be a second start-up path to keep correct.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  SourceChoice sources = choose_sources(options.sources, source_settings(options));
  for (const SourceStatus& st : sources.status) {
    if (!options.sources.empty() && !st.chosen && st.why != "not in --sources") {
      std::fprintf(stderr, "wattprobe: source %s is not available: %s\n", st.name.c_str(),
                   st.availability.reason.c_str());
      return 1;
    }
    if (st.stalled) {
      std::fprintf(stderr, "wattprobe: source %s is not used: %s\n", st.name.c_str(),
                   st.availability.reason.c_str());
    }
  }
  if (sources.chosen.empty()) {
    std::fprintf(stderr, "wattprobe: no energy source is readable; `wattprobe doctor` says why\n");
    return 1;
  }
  std::string names;
  for (const auto& s : sources.chosen) names += (names.empty() ? "" : ",") + std::string(s->name());
  std::fprintf(stderr, "wattprobe: energy sources: %s%s\n", names.c_str(),
               !sources.measured       ? " (ESTIMATE: no measured source is readable)"
               : sources.estimated_cpu ? " (CPU package ESTIMATED by model; the rest measured)"
                                       : "");

  auto accounting = choose_accounting(options);
  if (!accounting.ok()) {
    std::fprintf(stderr, "wattprobe: --accounting=bpf: %s\n", accounting.error().message().c_str());
    return 1;
  }
  std::fprintf(stderr, "wattprobe: cpu accounting: %s (%s)\n",
               std::string(accounting->accounting->mode()).c_str(), accounting->why.c_str());

  std::string accounting_mode(accounting->accounting->mode());
  Agent agent(options, make_energy_meter(std::move(sources)), std::move(accounting->accounting));
  CarbonConsumer carbon(options);
  agent.add_consumer(&carbon);
  CheckpointConsumer checkpoint(
      CheckpointStore(options.state_dir, read_host_identity(options.paths)),
      options.checkpoint_interval, agent.meter(), agent.attribution(), &carbon.carbon());
  agent.add_consumer(&checkpoint);
  LedgerConsumer ledger(options.ledger, carbon.carbon());
  agent.add_consumer(&ledger);
  // Everything privileged is open now (BPF loaded, counters opened at probe): keep only what
  // the tick still needs, before the first request can be served.
  std::vector<std::string> chosen;
  for (const SourceStatus& st : sources.status) {
    if (st.chosen || st.standby) chosen.push_back(st.name);  // a stand-in is read every tick
  }
  PrivilegePlan plan{capabilities_needed(chosen, accounting_mode == "bpf"), options.user};
  auto dropped = drop_privileges(plan);
  if (!dropped.ok()) {
    std::fprintf(stderr, "wattprobe: cannot drop privileges: %s\n",
                 dropped.error().message().c_str());
    return 1;
  }
  std::fprintf(stderr, "wattprobe: privileges: %s\n", dropped->c_str());
  // The ledger's files belong to the user that writes them, so its folder is made only now.
  if (auto opened = ledger.open(); !opened.ok()) {
    std::fprintf(stderr, "wattprobe: ledger: %s\n", opened.error().message().c_str());
    return 1;
  }

  // After the drop, so the checkpoint files are handled by the user that will write them; before
  // the first tick, so every _total continues from the checkpoint.
  if (auto refusal = checkpoint.restore()) {
    std::fprintf(stderr, "wattprobe: %s\n", refusal->c_str());
    return 1;
  }

  carbon.start();

  // After the drop: its sender is a thread (capabilities are per thread, so dropping must come
  // first), and its queue folder must be writable by the user the agent runs as from now on.
  std::unique_ptr<RemoteWriteConsumer> remote_write;
  if (!options.remote_write.url.empty()) {
    remote_write = std::make_unique<RemoteWriteConsumer>(options.remote_write);
    auto started = remote_write->start();
    if (!started.ok()) {
      std::fprintf(stderr, "wattprobe: remote-write: %s\n", started.error().message().c_str());
      return 1;
    }
    agent.add_consumer(remote_write.get());
  }

  Liveness liveness(options.interval);
  agent.add_consumer(&liveness);
  std::unique_ptr<PrometheusPull> pull;
  try {
    pull = std::make_unique<PrometheusPull>(
        options.listen, [&agent] { return agent.snapshot(); },
        [&liveness] { return liveness.answer(); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattprobe: %s\n", e.what());
    return 1;
  }
  std::printf("wattprobe: serving metrics at %s\n",
              metrics_url(options.listen, pull->port()).c_str());
  std::fflush(stdout);

  std::atomic<bool> ended{false};
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == 0 || ended) return;
    std::fprintf(stderr, "wattprobe: SIG%s: stopping (final checkpoint and ledger flush)\n",
                 sigabbrev_np(sig));
    agent.request_stop();
  });
  agent.run();
  ended = true;
  ledger.flush();  // the period in progress, with the seconds it covers
  // The flush (up to --remote-write-flush-timeout) overlaps the HTTP server's shutdown (up to
  // its 2 s poll quantum) instead of following it, so SIGTERM stays prompt with a hung receiver.
  if (remote_write) remote_write->begin_stop();
  // A normal end (--max-ticks) must still release the waiter.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  // The totals of the last tick, so a SIGTERM restart continues them exactly.
  checkpoint.write_now();
  std::fprintf(stderr, "wattprobe: stopped\n");
  return 0;
}

/// Prints the checkpoint `run` would restore, as the /metrics series it continues: a debugging
/// aid, and how the end-to-end tests read the last checkpoint. Never moves a file.
int checkpoint_dump(const Options& options) {
  CheckpointStore store(options.state_dir, read_host_identity(options.paths));
  CheckpointStore::Loaded loaded = store.load(/*set_aside=*/false);
  if (loaded.refusal) {
    std::fprintf(stderr, "wattprobe: %s\n", loaded.refusal->c_str());
    return 1;
  }
  if (!loaded.state) {
    std::fprintf(stderr, "wattprobe: no usable checkpoint in %s\n", options.state_dir.c_str());
    return 1;
  }
  const CheckpointState& s = *loaded.state;
  std::printf("# file %s\n# written_unix_ms %lld\n# host machine_id=%s hostname=%s\n",
              loaded.file.c_str(), static_cast<long long>(s.written_ms), s.host.machine_id.c_str(),
              s.host.hostname.c_str());
  for (const auto& b : s.budgets) {
    std::string target = b.budget.kind.empty() ? b.budget.workload : "kind:" + b.budget.kind;
    std::printf("# budget %s window=%s last_day=%lld consumption_grams=%.17g\n", target.c_str(),
                b.budget.window == CarbonBudget::Window::day ? "day" : "30d",
                static_cast<long long>(b.last_day), b.consumption());
  }
  auto snap = std::make_shared<Snapshot>();
  snap->timestamp_ms = s.written_ms;
  snap->families = checkpoint_families(s);
  auto collectable = make_snapshot_collectable([snap] { return SnapshotPtr(snap); });
  std::fputs(prometheus::TextSerializer().Serialize(collectable->Collect()).c_str(), stdout);
  return 0;
}

}  // namespace
}  // namespace wattprobe

int main(int argc, char** argv) {
  using namespace wattprobe;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::puts("wattprobe 0.1.0");
    return 0;
  }
  std::string command = args[0];
  args.erase(args.begin());
  if (command == "top") {
    if (std::find(args.begin(), args.end(), "--help") != args.end() ||
        std::find(args.begin(), args.end(), "-h") != args.end()) {
      std::fputs(top_options_help().c_str(), stdout);
      return 0;
    }
    TopOptions top;
    try {
      top = parse_top_options(args);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "wattprobe top: %s\n", e.what());
      return 2;
    }
    try {
      return run_top(top);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "wattprobe top: %s\n", e.what());
      return 1;
    }
  }
  // report reads files only and has its own options (a period, not an agent's configuration).
  if (command == "report") return run_report(args, std::cout, std::cerr);
  if (command != "run" && command != "doctor" && command != "checkpoint-dump") {
    std::fprintf(stderr, "wattprobe: unknown command \"%s\" (wattprobe --help lists them)\n",
                 command.c_str());
    return 2;
  }
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(run_options_help().c_str(), stdout);
    return 0;
  }
  Options options;
  try {
    options = parse_run_options(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "wattprobe %s: %s\n", command.c_str(), e.what());
    return 2;
  }
  try {
    if (command == "doctor") return run_doctor(options, std::cout);
    if (command == "checkpoint-dump") return checkpoint_dump(options);
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattprobe %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
