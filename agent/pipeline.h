#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/series_starts.h"
#include "agent/base/sink.h"
#include "agent/base/snapshot.h"
#include "agent/carbon/carbon.h"
#include "agent/device_health.h"
#include "agent/options.h"
#include "agent/sinks.h"
#include "agent/state/checkpoint.h"
#include "agent/state/job_records.h"
#include "agent/state/ledger.h"
#include "agent/tick/attribution.h"
#include "agent/tick/energy_meter.h"
#include "agent/tick/tick_loop.h"
#include "collectors/cpu/cpu_accounting.h"
#include "collectors/gpu/gpu_split_source.h"

namespace wattprobe {

/// Where start-up and the stages say what happened: one line each, without a prefix. main
/// prints them; nothing below the pipeline prints.
using LogLine = std::function<void(const std::string&)>;

/// `run` keeps state (checkpoint, ledger) and may push (remote-write). `top --standalone`
/// measures only, so it never competes with a daemon's files or receiver.
enum class PipelineRole { daemon, standalone };

/// The agent from the host to the sinks, built once from the options for `run` and `top
/// --standalone` alike. Each tick runs the stages in order (see tick()): readings → joules →
/// shares → grams → totals → families → sinks. Values flow forward: each stage is handed what
/// the stage before produced, and nothing is looked up sideways.
class Pipeline {
 public:
  /// The privileged half of start-up: probes the energy sources (with the start-up stall check)
  /// and loads the CPU accounting, saying what was chosen. The error's detail is why the agent
  /// cannot run, as one line for the log (so are start()'s).
  static Result<std::unique_ptr<Pipeline>> build(const Options& options, PipelineRole role,
                                                 const LogLine& log);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  /// What the ticks still need once start-up is over: the chosen sources', those standing by
  /// (a stand-in is read every tick) and the eBPF accounting's, which is measured: CAP_BPF only
  /// where a trial map read without it fails. Before any thread starts (it lowers and restores
  /// the calling thread's effective set).
  std::vector<int> capabilities_needed() const;

  /// The unprivileged half, after the privilege drop: the ledger's folder and the checkpoint's
  /// files belong to the user that writes them, and every thread (the grid refresh, the
  /// remote-write sender) starts only now, because capabilities are per thread and no network
  /// answer may be parsed with privileges. The error is why the agent must not start.
  Result<bool> start(const LogLine& log);

  /// A sink of the caller's (liveness, `top`, `validate`), added before start(). Not owned; must
  /// outlive run(). Its start() is not called: the caller starts what it owns.
  void add_sink(SnapshotSink* sink) { sinks_.push_back(sink); }

  /// Ticks until request_stop() or --max-ticks. `log` takes what the stages report while
  /// running (a checkpoint or ledger failure).
  void run(const LogLine& log);
  /// Thread-safe.
  void request_stop() { loop_.request_stop(); }
  /// After run(): writes the ledger's open period and begins every sink's stop (remote-write's
  /// final flush), so it overlaps whatever else is shutting down.
  void begin_stop();
  /// The last tick's totals to the checkpoint, so a restart continues them exactly. The daemon's
  /// sinks finish stopping when the pipeline goes.
  void finish(const LogLine& log);

  /// The last published snapshot; null before the first tick. Thread-safe.
  SnapshotPtr snapshot() const;
  /// For the carbon-aware API, which reads its thread-safe forecast and history.
  const Carbon& carbon() const { return *carbon_; }

 private:
  Pipeline(const Options& options, PipelineRole role, std::unique_ptr<EnergyMeter> meter,
           std::unique_ptr<CpuAccounting> accounting, std::vector<std::string> sources_kept);
  void tick(double seconds, const LogLine& log);
  void write_checkpoint(const LogLine& log);

  const Options options_;
  const PipelineRole role_;
  std::vector<std::string> sources_kept_;  // chosen and standing by, for the privilege drop
  TickLoop loop_;
  std::unique_ptr<EnergyMeter> meter_;
  std::unique_ptr<CpuAccounting> accounting_;
  /// The per-process split of every chosen source that reads GPUs.
  std::vector<std::unique_ptr<GpuSplitSource>> gpu_splits_;
  Attribution attribution_;
  std::unique_ptr<Carbon> carbon_;
  std::unique_ptr<Ledger> ledger_;                // daemon only
  JobUnits job_units_;                            // the units in each ended workload's record
  std::unique_ptr<CheckpointKeeper> checkpoint_;  // daemon only
  /// The daemon's own sinks (agent/sinks.h), started in start(); then the caller's.
  std::vector<NamedSink> own_sinks_;
  /// When each cumulative series began (OTLP's start times): lent to the sinks, which observe
  /// it as they need; restored from and saved to the checkpoint for the totals it continues.
  SeriesStarts starts_;
  /// When the meter last read the counters: a tick's energy spans the time between two reads.
  std::optional<std::chrono::steady_clock::time_point> last_energy_read_;
  /// Batteries, thermal stress, storage wear: exported beside the energy, never attributed.
  std::unique_ptr<DeviceHealth> health_;
  std::vector<SnapshotSink*> sinks_;

  mutable std::mutex mu_;
  SnapshotPtr snapshot_;
};

}  // namespace wattprobe
