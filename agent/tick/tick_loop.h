#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/tick/attribution.h"
#include "collectors/cpu_accounting.h"
#include "agent/tick/energy_meter.h"
#include "agent/tick/energy_tick.h"
#include "agent/options.h"
#include "agent/tick/self_metrics.h"
#include "agent/base/snapshot.h"
#include "collectors/registry.h"
#include "collectors/gpu_split.h"
#include "collectors/nvml.h"

namespace wattprobe {

/// A part of the agent that follows the ticks: carbon, the ledger, checkpoints, remote-write.
/// All calls come from the sampling thread, in this order each tick: on_tick, append_families
/// (into the snapshot being built), on_snapshot (after it is published).
class TickConsumer {
 public:
  virtual ~TickConsumer() = default;
  virtual void on_tick(const EnergyTick&) {}
  virtual void append_families(std::vector<Family>&) const {}
  virtual void on_snapshot(const SnapshotPtr&) {}
};

/// The sampling loop: every interval, read energy and CPU accounting, attribute, hand the
/// result to the consumers and publish an immutable snapshot for the exporters.
class Agent {
 public:
  Agent(Options options, std::unique_ptr<EnergyMeter> meter,
        std::unique_ptr<CpuAccounting> accounting);

  /// Not owned; must outlive run().
  void add_consumer(TickConsumer* consumer) { consumers_.push_back(consumer); }

  /// Runs ticks until request_stop() or --max-ticks. A stop request ends the wait at once, so
  /// SIGTERM stops the agent within one tick's work, not one interval.
  void run();
  void request_stop();

  /// The last published snapshot; null before the first tick. Thread-safe.
  SnapshotPtr snapshot() const;

  Attribution& attribution() { return attribution_; }
  EnergyMeter& meter() { return *meter_; }

 private:
  void tick(double seconds);

  Options options_;
  std::unique_ptr<EnergyMeter> meter_;
  std::unique_ptr<CpuAccounting> accounting_;
  Attribution attribution_;
  const NvmlSource* nvml_ = nullptr;   // among the meter's sources, when chosen
  std::unique_ptr<GpuWorkloads> gpu_;  // splits the nvml GPUs' energy by process
  SelfMetrics self_;
  std::vector<TickConsumer*> consumers_;
  uint64_t ticks_ = 0;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  SnapshotPtr snapshot_;
};

int64_t wall_clock_ms();

/// The meter `run` and `top` use: the chosen sources, those standing by, and the counters found
/// stalled at start. Takes the sources out of `choice`; its status stays.
std::unique_ptr<EnergyMeter> make_energy_meter(SourceChoice&& choice);

}  // namespace wattprobe
