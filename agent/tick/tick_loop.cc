#include "agent/tick/tick_loop.h"

#include <algorithm>
#include <chrono>
#include <optional>

namespace wattprobe {

int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<EnergyMeter> make_energy_meter(SourceChoice&& choice) {
  return std::make_unique<EnergyMeter>(std::move(choice.chosen), std::move(choice.standby),
                                       choice.stalled);
}

Agent::Agent(Options options, std::unique_ptr<EnergyMeter> meter,
             std::unique_ptr<CpuAccounting> accounting)
    : options_(std::move(options)),
      meter_(std::move(meter)),
      accounting_(std::move(accounting)),
      attribution_(options_.attribution) {
  for (const auto& source : meter_->sources()) {
    if (auto* nvml = dynamic_cast<const NvmlSource*>(source.get())) nvml_ = nvml;
  }
  if (nvml_) gpu_ = std::make_unique<GpuWorkloads>(options_.paths);
}

void Agent::request_stop() {
  std::lock_guard lock(mu_);
  stop_ = true;
  wake_.notify_all();
}

SnapshotPtr Agent::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

void Agent::run() {
  using clock = std::chrono::steady_clock;
  auto last = clock::now();
  auto next = last;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (wake_.wait_until(lock, next, [&] { return stop_; })) return;
    }
    auto start = clock::now();
    tick(std::chrono::duration<double>(start - last).count());
    last = start;
    self_.record_tick(clock::now() - start);
    if (options_.max_ticks && ++ticks_ >= options_.max_ticks) return;
    next += options_.interval;
    // After a stall (suspend, an overloaded host) resume the cadence instead of catching up
    // with a burst of back-to-back ticks.
    if (next < clock::now()) next = clock::now() + options_.interval;
  }
}

void Agent::tick(double seconds) {
  // CPU time first: how busy the host was is the meter's evidence for a stalled counter. Both
  // are read back to back, so they still cover the same interval.
  CpuTick cpu = accounting_->drain();
  std::optional<double> busy_cpus;
  if (cpu.capacity_ns > 0 && seconds > 0) {
    busy_cpus = static_cast<double>(cpu.capacity_ns - std::min(cpu.idle_ns, cpu.capacity_ns)) /
                (seconds * 1e9);
  }
  NodeEnergy energy = meter_->tick(seconds, busy_cpus);
  int64_t now_ms = wall_clock_ms();
  GpuTick gpu;
  if (nvml_) {
    gpu = gpu_->tick(
        *nvml_,
        std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count());
  }
  EnergyTick energy_tick = attribution_.apply(energy, cpu, now_ms, nvml_ ? &gpu : nullptr);
  for (TickConsumer* c : consumers_) c->on_tick(energy_tick);

  auto snap = std::make_shared<Snapshot>();
  snap->timestamp_ms = now_ms;
  meter_->append_families(snap->families);
  attribution_.append_families(snap->families);
  if (nvml_) gpu_->append_families(*nvml_, snap->families);
  snap->families.push_back({"wattprobe_agent_accounting_mode",
                            "How per-workload CPU time is accounted: bpf, or the procfs fallback.",
                            MetricType::gauge,
                            {{{{"mode", std::string(accounting_->mode())}}, 1}}});
  for (const TickConsumer* c : consumers_) c->append_families(snap->families);
  self_.append_families(snap->families);
  SnapshotPtr published = std::move(snap);
  {
    std::lock_guard lock(mu_);
    snapshot_ = published;
  }
  for (TickConsumer* c : consumers_) c->on_snapshot(published);
}

}  // namespace wattprobe
