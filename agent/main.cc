#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/log.h"
#include "agent/carbon/carbon_aware_api.h"
#include "agent/cli/commands.h"
#include "agent/cli/doctor.h"
#include "agent/cli/parse_options.h"
#include "agent/cli/report.h"
#include "agent/cli/scorecard.h"
#include "agent/cli/when.h"
#include "agent/liveness.h"
#include "agent/pipeline.h"
#include "agent/privileges.h"
#include "agent/state/checkpoint.h"
#include "agent/state/state_folder.h"
#include "exporters/http_server.h"
#include "exporters/prometheus_pull.h"
#include "exporters/prometheus_text.h"

namespace wattprobe {
namespace {

constexpr const char* kVersion = "0.1.0";

constexpr const char* kUsage =
    "usage: wattprobe <command> [options]\n"
    "  run      the daemon: measure, attribute, export (/metrics)\n"
    "  doctor   which energy sources and accounting this host offers, and why not\n"
    "  checkpoint-dump  the totals `run` would restore from --state-dir, as /metrics series\n"
    "  report   totals from the ledger over a period (`wattprobe report --help`)\n"
    "  scorecard  the fleet's monthly carbon scorecard from Prometheus (`--help`)\n"
    "  top      live per-workload watts, CO2e rate and CPU share in the terminal\n"
    "  validate check the agent's claims on this host and write a report (`--help`)\n"
    "  when     the greenest start for a job, from the grid forecast; --exec runs it then\n"
    "  --help   this text; `wattprobe run --help` lists the options\n"
    "  --version\n";

std::string metrics_url(const std::string& listen, int port, bool tls) {
  std::string host = listen.substr(0, listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  if (host == "[::]") host = "[::1]";
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(port) + "/metrics";
}

/// The pipeline's lines go where every other part's go (agent/base/log.h).
void log_to_stderr(const std::string& line) { log_line(line); }

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

  // Started as root, the agent runs as an unprivileged user once started (--user overrides); the
  // state folder is made writable for that user now, while the agent may still chown.
  const RunUser run_user = choose_run_user(options.user);
  if (run_user.refused) {
    log_line("refusing to run as nobody: " + run_user.why);
    return 1;
  }
  const std::string& user = run_user.user;
  std::optional<StateOwner> owner;
  if (!user.empty()) {
    auto identity = lookup_user(user);
    if (!identity.ok()) {
      log_line("cannot run as " + user + ": " + identity.error().message() +
               (options.user.empty() ? " (name another with --user)" : ""));
      return 1;
    }
    owner = StateOwner{identity->uid, identity->gid, identity->name};
  }
  // Checked now, changed (created, handed over) only once nothing else can refuse the start.
  auto state_folder_refused = [](const Error& e) {
    log_line(e.path.empty() ? e.detail : "state folder: " + e.message());
    return 1;
  };
  if (auto checked = check_state_folder(options.state_dir, owner); !checked.ok())
    return state_folder_refused(checked.error());
  if (!options.guest_energy.dir.empty()) {
    auto guests = prepare_guest_energy_folder(options.guest_energy.dir, owner);
    if (!guests.ok()) {
      log_line("--guest-energy-dir: " + guests.error().message());
      return 1;
    }
    log_line(*guests);
  }

  auto built = Pipeline::build(options, PipelineRole::daemon, log_to_stderr);
  if (!built.ok()) {
    log_line(built.error().detail);
    return 1;
  }
  Pipeline& pipeline = **built;
  auto folder = prepare_state_folder(options.state_dir, owner);
  if (!folder.ok()) return state_folder_refused(folder.error());
  log_line(*folder);
  // Everything privileged is open now (BPF loaded, counters opened at probe): keep only what
  // the tick still needs, before the first request can be served.
  auto dropped = drop_privileges(PrivilegePlan{pipeline.capabilities_needed(), user});
  if (!dropped.ok()) {
    log_line("cannot drop privileges: " + dropped.error().message());
    return 1;
  }
  log_line("privileges: " + *dropped);
  if (auto started = pipeline.start(log_to_stderr); !started.ok()) {
    log_line(started.error().detail);
    return 1;
  }
  // Where bpf accounting fell back to libbpf's skeleton (kernels before 5.17), loading parsed
  // the kernel's BTF (some 11 MiB, freed since): hand the freed heap back, or the agent would
  // hold it for its whole life. The light skeletons parse nothing, and then this is cheap.
  malloc_trim(0);

  Liveness liveness(options.interval);
  pipeline.add_sink(&liveness);
  auto metrics = make_metrics_endpoint([&pipeline] { return pipeline.snapshot(); });
  auto health = make_health_endpoint([&liveness] { return liveness.answer(); });
  const Carbon& carbon = pipeline.carbon();
  std::shared_ptr<HttpEndpoint> carbon_api =
      make_carbon_aware_api({[&carbon](int64_t now) { return carbon.forecast_at(now); },
                             &carbon.history(),
                             options.carbon.zone,
                             {}});
  // The server routes by each endpoint's paths().
  std::vector<HttpEndpoint*> endpoints = {metrics.get(), health.get(), carbon_api.get()};
  std::unique_ptr<HttpServer> server;
  try {
    server = std::make_unique<HttpServer>(options.listen, endpoints, options.web);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattprobe: %s\n", e.what());
    return 1;
  }
  for (std::size_t i = 0; i < options.listen.size(); ++i) {
    std::printf("wattprobe: serving metrics at %s\n",
                metrics_url(options.listen[i], server->ports()[i], server->tls()).c_str());
  }
  std::fflush(stdout);

  std::atomic<bool> ended{false};
  std::thread signal_waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig == 0 || ended) return;
    std::fprintf(stderr, "wattprobe: SIG%s: stopping (final checkpoint and ledger flush)\n",
                 sigabbrev_np(sig));
    pipeline.request_stop();
  });
  pipeline.run(log_to_stderr);
  ended = true;
  pipeline.begin_stop();
  // A normal end (--max-ticks) must still release the waiter.
  pthread_kill(signal_waiter.native_handle(), SIGTERM);
  signal_waiter.join();
  pipeline.finish(log_to_stderr);
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
  // The text /metrics serves, so the totals compare with a scrape digit for digit.
  std::fputs(render_prometheus_text(*snap).c_str(), stdout);
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
    std::printf("wattprobe %s\n", kVersion);
    return 0;
  }
  std::string command = args[0];
  args.erase(args.begin());
  if (command == "top") return top_command(args);
  if (command == "validate") return validate_command(args, kVersion);
  // report reads files only and has its own options (a period, not an agent's configuration).
  if (command == "report") return run_report(args, std::cout, std::cerr);
  if (command == "when") return when_command(args);
  if (command == "scorecard") return run_scorecard(args, std::cout, std::cerr);
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
  } catch (const SourceUsageError& e) {
    std::fprintf(stderr, "wattprobe %s: %s\n", command.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wattprobe %s: %s\n", command.c_str(), e.what());
    return 1;
  }
}
