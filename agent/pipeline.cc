#include "agent/pipeline.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "agent/accounting_choice.h"
#include "agent/base/utc_time.h"
#include "agent/carbon/grid/registry.h"
#include "agent/privileges.h"
#include "agent/settings.h"
#include "collectors/registry.h"

namespace wattprobe {

namespace {

/// The pipeline's errors are whole lines for the log: what failed, then the error's own words.
Error line(std::string what, const Error& e) {
  return Error{e.kind, "", std::move(what) + ": " + e.message()};
}

/// The GPU splits of the meter's sources, from their table lines.
std::vector<std::unique_ptr<GpuSplitSource>> gpu_splits(const EnergyMeter& meter,
                                                        const HostPaths& paths) {
  std::vector<std::unique_ptr<GpuSplitSource>> splits;
  for (const auto& source : meter.sources()) {
    if (auto split = make_gpu_split(*source, paths)) splits.push_back(std::move(split));
  }
  return splits;
}

/// Carbon's options with the GPUs the sources list: embodied carbon then counts each GPU once,
/// not once more for an emulated display (carbon does not read sources). Its workloads expire
/// as attribution's do.
CarbonOptions carbon_options(CarbonOptions o,
                             const std::vector<std::unique_ptr<GpuSplitSource>>& gpus,
                             const Options& options) {
  o.workload_expiry = options.attribution.workload_expiry;
  o.max_workloads = options.max_workloads;
  int embodied = 0;
  for (const auto& g : gpus) embodied += g->embodied_gpus();
  if (embodied > 0) o.listed_gpus = embodied;
  return o;
}

/// Attribution's options with the workload cap every per-workload family shares.
AttributionOptions attribution_options(const Options& options) {
  AttributionOptions o = options.attribution;
  o.max_workloads = options.max_workloads;
  return o;
}

}  // namespace

Result<std::unique_ptr<Pipeline>> Pipeline::build(const Options& options, PipelineRole role,
                                                  const LogLine& log) {
  SourceChoice sources = choose_sources(options.sources, source_settings(options));
  std::vector<std::string> kept;
  for (const SourceStatus& st : sources.status) {
    if (!options.sources.empty() && st.requested && !st.chosen) {
      return Error{ErrorKind::absent, "",
                   "source " + st.name + " is not available: " + st.availability.reason};
    }
    if (st.stalled) log("source " + st.name + " is not used: " + st.availability.reason);
    if (st.chosen || st.standby) kept.push_back(st.name);
  }
  if (sources.chosen.empty()) {
    return Error{ErrorKind::absent, "",
                 "no energy source is readable; `wattprobe doctor` says why"};
  }
  std::string names;
  for (const auto& s : sources.chosen) names += (names.empty() ? "" : ",") + std::string(s->name());
  log("energy sources: " + names +
      (!sources.measured       ? " (ESTIMATE: no measured source is readable)"
       : sources.estimated_cpu ? " (CPU package ESTIMATED by model; the rest measured)"
                               : ""));

  auto accounting = choose_accounting(accounting_settings(options));
  if (!accounting.ok()) return line("--accounting=" + options.accounting, accounting.error());
  log("cpu accounting: " + std::string(accounting->accounting->mode()) + " (" + accounting->why +
      ")");
  auto meter = std::make_unique<EnergyMeter>(std::move(sources.chosen), std::move(sources.standby),
                                             sources.stalled);
  return std::unique_ptr<Pipeline>(new Pipeline(
      options, role, std::move(meter), std::move(accounting->accounting), std::move(kept)));
}

Pipeline::Pipeline(const Options& options, PipelineRole role, std::unique_ptr<EnergyMeter> meter,
                   std::unique_ptr<CpuAccounting> accounting, std::vector<std::string> sources_kept)
    : options_(options),
      role_(role),
      sources_kept_(std::move(sources_kept)),
      loop_(TickLoopOptions{options.interval, options.max_ticks}),
      meter_(std::move(meter)),
      accounting_(std::move(accounting)),
      gpu_splits_(gpu_splits(*meter_, options.paths)),
      attribution_(attribution_options(options)),
      // Reads the grid API key now, while the agent may still read a root-only file; fetches
      // nothing until start().
      carbon_(make_carbon(options.paths, carbon_options(options.carbon, gpu_splits_, options))) {
  // Here, in the privileged half, because the NVMe SMART logs need CAP_SYS_ADMIN.
  health_ = std::make_unique<DeviceHealth>(options.paths,
                                           parse_install_date(options.carbon.install_date));
  if (role_ == PipelineRole::daemon) {
    ledger_ = std::make_unique<Ledger>(options.ledger);
    checkpoint_ = std::make_unique<CheckpointKeeper>(
        CheckpointStore(options.state_dir, read_host_identity(options.paths)),
        options.checkpoint_interval);
    own_sinks_ = make_daemon_sinks(options);
  }
}

// Last, after main has closed the HTTP server: a sink's final flush (remote-write's, up to its
// --remote-write-flush-timeout) began in begin_stop() and has overlapped that shutdown, so
// SIGTERM stays prompt with a hung receiver. The grid refresh thread ends with its owner.
Pipeline::~Pipeline() {
  for (NamedSink& s : own_sinks_) s.sink->finish_stop();
}

std::vector<int> Pipeline::capabilities_needed() const {
  return wattprobe::capabilities_needed(sources_kept_, accounting_needs_cap_bpf(*accounting_));
}

Result<bool> Pipeline::start(const LogLine& log) {
  if (accounting_->mode() == "procfs") {
    if (auto hidden = hidden_processes_warning(options_.paths)) log(*hidden);
  }
  if (ledger_) {
    if (auto opened = ledger_->open(wall_clock_ms()); !opened.ok()) {
      return line("ledger", opened.error());
    }
  }
  // Before the first tick, so every _total continues from the checkpoint.
  if (checkpoint_) {
    auto restored = checkpoint_->restore();
    if (!restored.ok()) return Error{restored.error().kind, "", restored.error().detail};
    for (const std::string& line : restored->log) log(line);
    if (restored->state) {
      restore_totals(*restored->state, *meter_, attribution_, carbon_.get());
      starts_.restore(restored->state->series_starts);
    }
  }
  carbon_->start(log);
  const SinkContext context{log, &starts_, wall_clock_ms()};
  for (NamedSink& s : own_sinks_) {
    if (auto started = s.sink->start(context); !started.ok()) return line(s.name, started.error());
  }
  // The daemon's sinks first, so the caller's (liveness, top) see a snapshot the others took.
  std::vector<SnapshotSink*> callers = std::move(sinks_);
  sinks_.clear();
  for (NamedSink& s : own_sinks_) sinks_.push_back(s.sink.get());
  sinks_.insert(sinks_.end(), callers.begin(), callers.end());
  return true;
}

void Pipeline::run(const LogLine& log) {
  loop_.run([&](double seconds) { tick(seconds, log); });
}

void Pipeline::tick(double seconds, const LogLine& log) {
  // readings → joules. CPU time first: how busy the host was is the meter's evidence for a
  // stalled counter. Both are read back to back, so they cover the same interval.
  CpuTick cpu = accounting_->drain();
  std::optional<double> busy_cpus;
  if (cpu.capacity_ns > 0 && seconds > 0) {
    busy_cpus = static_cast<double>(cpu.capacity_ns - std::min(cpu.idle_ns, cpu.capacity_ns)) /
                (seconds * 1e9);
  }
  // The energy's seconds are those between the counter reads, not between the tick starts: the
  // drain before the read takes a varying time on a busy host (10-70 ms with six busy loops on
  // two CPUs), which over a 200 ms tick moved one tick's watts by up to 35 %.
  const auto read_at = std::chrono::steady_clock::now();
  const double energy_seconds =
      last_energy_read_ ? std::chrono::duration<double>(read_at - *last_energy_read_).count()
                        : seconds;
  last_energy_read_ = read_at;
  NodeEnergy energy = meter_->tick(energy_seconds, busy_cpus);
  const int64_t now_ms = wall_clock_ms();
  GpuTick gpu;
  const double now_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  for (const auto& split : gpu_splits_) {
    for (GpuDeviceTick& d : split->tick(now_s)) gpu.devices.push_back(std::move(d));
  }

  // joules → shares: idle + workloads + unattributed = measured, per domain.
  EnergyTick shares = attribution_.apply(energy, cpu, now_ms, &gpu);

  // shares → grams.
  const CarbonTickGrams& grams = carbon_->on_tick(shares);
  carbon_->add_run_grams(shares.ended);

  // grams → totals on disk: the ledger's periods, the checkpoint's totals.
  if (ledger_) ledger_->on_tick(shares, grams);
  if (checkpoint_ && checkpoint_->due()) write_checkpoint(log);

  // families: what this tick publishes.
  auto snap = std::make_shared<Snapshot>();
  snap->timestamp_ms = now_ms;
  std::vector<Family>& families = snap->families;
  meter_->append_families(families);
  attribution_.append_families(families);
  append_gpu_split_families(gpu_splits_, families);
  for (const auto& source : meter_->sources()) source->append_families(families);
  health_->tick(seconds, now_ms, log);
  health_->append_families(families);
  families.push_back({"wattprobe_agent_accounting_mode",
                      "How per-workload CPU time is accounted: cgroup (the kernel's per-cgroup "
                      "time), bpf (the sched_switch hook), or the procfs fallback.",
                      MetricType::gauge,
                      {{{{"mode", std::string(accounting_->mode())}}, 1}}});
  carbon_->append_families(families);
  if (ledger_) ledger_->append_families(families);
  if (checkpoint_) checkpoint_->append_families(families);
  for (const SnapshotSink* sink : sinks_) sink->append_families(families);
  // After the sinks: the units sink's counts of work go to the ledger's periods.
  if (ledger_) ledger_->count_units(families, now_ms);
  // And, for the workloads that ended, into their job records.
  job_units_.on_tick(families, &shares.ended);
  if (!shares.ended.empty()) {
    snap->ended = std::make_shared<const std::vector<EndedWorkload>>(std::move(shares.ended));
  }
  loop_.append_families(families);
  SnapshotPtr published = std::move(snap);
  {
    std::lock_guard lock(mu_);
    snapshot_ = published;
  }

  // sinks: the one place the route branches.
  for (SnapshotSink* sink : sinks_) sink->on_snapshot(published);
}

void Pipeline::write_checkpoint(const LogLine& log) {
  CheckpointState totals = capture_totals(*meter_, attribution_, carbon_.get());
  totals.series_starts = starts_.entries();
  auto written = checkpoint_->write(std::move(totals));
  if (!written.ok()) log("checkpoint not written: " + written.error().message());
}

void Pipeline::begin_stop() {
  if (ledger_) ledger_->flush_all();  // the period in progress, with the seconds it covers
  // The flush (up to --remote-write-flush-timeout) overlaps the HTTP server's shutdown (up to
  // its 2 s poll quantum) instead of following it, so SIGTERM stays prompt with a hung receiver.
  for (SnapshotSink* sink : sinks_) sink->begin_stop();
}

void Pipeline::finish(const LogLine& log) {
  if (checkpoint_) write_checkpoint(log);
}

SnapshotPtr Pipeline::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

}  // namespace wattprobe
