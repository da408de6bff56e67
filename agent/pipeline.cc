#include "agent/pipeline.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "agent/accounting_choice.h"
#include "agent/base/utc_time.h"
#include "agent/carbon/grid/registry.h"
#include "agent/privileges.h"
#include "collectors/gpu_power_limit.h"
#include "collectors/registry.h"

namespace wattprobe {

namespace {

/// The pipeline's errors are whole lines for the log: what failed, then the error's own words.
Error line(std::string what, const Error& e) {
  return Error{e.kind, "", std::move(what) + ": " + e.message()};
}

/// Carbon's options with the GPUs the nvml source lists, when it runs: embodied carbon then
/// counts each GPU once, not once more for an emulated display (carbon does not read sources).
/// Its workloads expire as attribution's do.
CarbonOptions carbon_options(CarbonOptions o, const EnergyMeter& meter, const Options& options) {
  o.workload_expiry = options.attribution.workload_expiry;
  o.max_workloads = options.max_workloads;
  for (const auto& source : meter.sources()) {
    if (auto* nvml = dynamic_cast<const NvmlSource*>(source.get());
        nvml && !nvml->devices().empty())
      o.nvml_gpus = static_cast<int>(nvml->devices().size());
  }
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
      attribution_(options.attribution),
      // Reads the grid API key now, while the agent may still read a root-only file; fetches
      // nothing until start().
      carbon_(make_carbon(options.paths, carbon_options(options.carbon, *meter_, options))) {
  for (const auto& source : meter_->sources()) {
    if (auto* nvml = dynamic_cast<const NvmlSource*>(source.get())) nvml_ = nvml;
    if (auto* hwmon = dynamic_cast<const HwmonSource*>(source.get())) hwmon_ = hwmon;
  }
  if (nvml_) gpu_ = std::make_unique<GpuWorkloads>(options.paths);
  for (const auto& source : meter_->sources()) {
    auto* hwmon = dynamic_cast<const HwmonSource*>(source.get());
    if (!hwmon) continue;
    for (const auto& s : hwmon->sensors()) {
      if (s.domain == "gpu") hwmon_gpus_ = hwmon;
    }
  }
  if (hwmon_gpus_) drm_gpu_ = std::make_unique<DrmGpuWorkloads>(options.paths);
  // Here, in the privileged half, because the NVMe SMART logs need CAP_SYS_ADMIN.
  health_ = std::make_unique<DeviceHealth>(options.paths,
                                           parse_install_date(options.carbon.install_date));
  if (role_ == PipelineRole::daemon) {
    ledger_ = std::make_unique<Ledger>(options.ledger);
    checkpoint_ = std::make_unique<CheckpointKeeper>(
        CheckpointStore(options.state_dir, read_host_identity(options.paths)),
        options.checkpoint_interval);
  }
}

// The remote-write sender and the grid refresh thread end with their owners.
Pipeline::~Pipeline() = default;

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
  if (role_ == PipelineRole::daemon && !options_.remote_write.url.empty()) {
    remote_write_ = std::make_unique<RemoteWrite>(options_.remote_write);
    if (auto started = remote_write_->start(); !started.ok()) {
      return line("remote-write", started.error());
    }
  }
  if (role_ == PipelineRole::daemon && !options_.guest_energy.dir.empty()) {
    guest_energy_ = std::make_unique<GuestEnergyWriter>(options_.guest_energy);
    if (auto opened = guest_energy_->open(); !opened.ok()) {
      return line("--guest-energy-dir", opened.error());
    }
  }
  if (role_ == PipelineRole::daemon && !options_.otlp.endpoint.empty()) {
    OtlpOptions o = options_.otlp;
    const HostIdentity host = read_host_identity(options_.paths);
    o.host_name = host.hostname;
    o.host_id = host.machine_id;
    otlp_ = std::make_unique<OtlpExporter>(std::move(o));
    if (auto started = otlp_->start(); !started.ok()) return line("OTLP", started.error());
  }
  started_ms_ = wall_clock_ms();
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
  if (nvml_) {
    gpu = gpu_->tick(
        *nvml_,
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  }
  if (drm_gpu_) {
    for (GpuDeviceTick& d : drm_gpu_->tick(*hwmon_gpus_).devices)
      gpu.devices.push_back(std::move(d));
  }

  // joules → shares: idle + workloads + unattributed = measured, per domain.
  EnergyTick shares = attribution_.apply(energy, cpu, now_ms, &gpu);

  // shares → grams.
  const CarbonTickGrams& grams = carbon_->on_tick(shares);

  // grams → totals on disk: the ledger's periods, the checkpoint's totals.
  if (ledger_) ledger_->on_tick(shares, grams);
  if (checkpoint_ && checkpoint_->due()) write_checkpoint(log);

  // families: what this tick publishes.
  auto snap = std::make_shared<Snapshot>();
  snap->timestamp_ms = now_ms;
  std::vector<Family>& families = snap->families;
  meter_->append_families(families);
  attribution_.append_families(families);
  append_gpu_families(nvml_, gpu_.get(), drm_gpu_.get(), families);
  if (nvml_ || hwmon_gpus_) {
    std::vector<GpuPowerLimit> limits;
    if (nvml_) limits = nvml_->power_limits();
    if (hwmon_gpus_) {
      for (GpuPowerLimit& l : hwmon_gpus_->gpu_power_limits()) limits.push_back(std::move(l));
    }
    append_gpu_power_limit_family(limits, families);
  }
  if (hwmon_) hwmon_->append_families(families);
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
  if (remote_write_) remote_write_->append_families(families);
  if (guest_energy_) guest_energy_->append_families(families);
  if (otlp_) otlp_->append_families(families);
  for (const SnapshotSink* sink : sinks_) sink->append_families(families);
  loop_.append_families(families);
  SnapshotPtr published = std::move(snap);
  {
    std::lock_guard lock(mu_);
    snapshot_ = published;
  }

  // sinks: the one place the route branches.
  if (remote_write_) remote_write_->enqueue(*published);
  if (guest_energy_) {
    for (const std::string& l : guest_energy_->write(*published)) log(l);
  }
  if (otlp_) {
    starts_.observe(*published, last_tick_ms_ > 0 ? last_tick_ms_ : started_ms_);
    otlp_->enqueue(*published, starts_);
  }
  last_tick_ms_ = now_ms;
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
  if (remote_write_) remote_write_->request_stop();
  if (otlp_) otlp_->request_stop();
}

void Pipeline::finish(const LogLine& log) {
  if (checkpoint_) write_checkpoint(log);
}

SnapshotPtr Pipeline::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

}  // namespace wattprobe
