#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/held_file.h"
#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "agent/base/series_starts.h"
#include "agent/base/sink.h"
#include "agent/base/snapshot.h"
#include "exporters/push_queue.h"

namespace wattprobe {

using NameValues = std::vector<std::pair<std::string, std::string>>;

struct OtlpOptions {
  /// The Collector's OTLP/HTTP base URL (http:// or https://, e.g. http://collector:4318);
  /// requests go to <endpoint>/v1/metrics.
  std::string endpoint;
  /// Extra request headers (e.g. X-Scope-OrgID). Protocol headers cannot be overridden.
  NameValues headers;
  /// Headers whose value is read from a file before every request (a rotated secret is picked
  /// up without a restart): name → file.
  NameValues header_files;
  /// The header files opened before the privilege drop (hold_secret_files), by path.
  std::map<std::string, HeldFile> held_secrets;
  bool gzip = true;  // --otlp-compression gzip|none
  /// Extra CA bundle (PEM) for https; empty = the system store. Peer verification is always on.
  std::string ca_file;
  /// The resource every point belongs to. host.name and host.id come from the host (the machine
  /// id, read under --procfs-root); service.name=wattprobe and service.version are the agent's;
  /// `resource_attributes` (--otlp-resource-attribute) add to them or replace one of them.
  std::string host_name;
  std::string host_id;
  NameValues resource_attributes;
  /// The queue lives in <state_dir>/otlp, beside remote-write's.
  std::filesystem::path state_dir;
  std::size_t queue_max_bytes = std::size_t{64} << 20;
  bool queue_fsync_each_append = true;
  std::chrono::milliseconds batch_interval{1000};
  std::size_t max_samples_per_request = 2000;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{10000};  // the OTLP exporters' default
  /// As remote-write's: starts at backoff_min, doubles per failed attempt up to backoff_max; a
  /// Retry-After replaces it, capped at retry_after_max.
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds retry_after_max{std::chrono::minutes(5)};
  std::chrono::milliseconds stop_flush_timeout{2000};
};

/// Opens every header file of `o` that can be opened now and keeps it in `o.held_secrets`; one
/// that cannot is left to the reader, which reports it while the agent runs.
void hold_secret_files(OtlpOptions& o);

/// Names the first wrong field and its value ("otlp-endpoint \"ftp://x\": ..."); never repeats a
/// header value.
Result<bool> validate(const OtlpOptions& options);

/// --otlp-*. The state folder and what needs the endpoint are set and checked where the options
/// are read.
OptionTable<OtlpOptions> otlp_option_table();

/// The resource attributes of every request, in order: host.name, host.id (when known),
/// service.name, service.version, then the configured ones (a configured name replaces a
/// default of that name in place).
NameValues otlp_resource(const OtlpOptions& options);

/// The unit (UCUM) of a family by its Prometheus name's unit suffix: J, W, g, s, g/kW.h, By, or 1.
std::string otlp_unit(std::string_view family);

/// One tick as an OTLP ExportMetricsServiceRequest (serialized, uncompressed, deterministic):
/// one ResourceMetrics with `resource`, one ScopeMetrics (wattprobe and its version); each
/// counter a monotonic cumulative Sum, each gauge a Gauge, the histogram a cumulative Histogram
/// (bucket counts per bucket); names are the Prometheus names, labels with a value become
/// attributes, a cumulative point's start time comes from `starts`. The whole-host and
/// per-component energy and power are added under the OpenTelemetry hardware conventions'
/// names (hw.host.energy, hw.host.power, hw.energy, hw.power; docs/metrics.md). `points` is how
/// many data points it holds; `invalid` counts series left out (a label without a name).
std::string encode_otlp_tick(const Snapshot& snapshot, const SeriesStarts& starts,
                             const NameValues& resource, uint32_t* points, uint64_t* invalid);

/// The data points a receiver's 2xx answer (an ExportMetricsServiceResponse) says it rejected,
/// with its error message in `why`; 0 for an empty body or one that is no response message.
uint64_t otlp_rejected_points(std::string_view body, std::string* why);

/// OTLP/HTTP push (protobuf bodies, gzip by default) with the same delivery guarantees as
/// remote-write: each tick is queued on disk (exporters/push_queue.h), leaves the queue only on
/// a 2xx, a partial-success answer counts the points it rejected.
class OtlpExporter : public SnapshotSink, private PushProtocol {
 public:
  explicit OtlpExporter(OtlpOptions options);
  ~OtlpExporter() override;  // stop()
  OtlpExporter(const OtlpExporter&) = delete;
  OtlpExporter& operator=(const OtlpExporter&) = delete;

  /// Opens (and replays) the disk queue and starts the sender thread. Call once, at start-up.
  Result<bool> start();
  void request_stop() { push_.request_stop(); }
  void stop() { push_.stop(); }
  /// The sampling thread, each tick, after `starts` has observed `snapshot`: encodes it
  /// (encode_otlp_tick) and appends it to the disk queue as one record.
  void enqueue(const Snapshot& snapshot, const SeriesStarts& starts);
  /// wattprobe_agent_otlp_* (as remote-write's, plus reason="partial"). Thread-safe.
  void append_families(std::vector<Family>& out) const override { push_.append_families(out); }

  // As a sink of the running agent: start() with the agent's series starts, which each snapshot
  // is observed into before it is encoded (a series new in a tick starts at the tick before).
  Result<bool> start(const SinkContext& context) override;
  void on_snapshot(const SnapshotPtr& snapshot) override;
  void begin_stop() override { request_stop(); }
  void finish_stop() override { stop(); }

  bool wait_until_drained(std::chrono::milliseconds timeout) const {
    return push_.wait_until_drained(timeout);
  }
  using Counters = PushQueue::Counters;
  Counters counters() const { return push_.counters(); }

 private:
  bool build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                     uint64_t* corrupt) override;
  Result<Request> request() override;
  uint64_t rejected_in_success(std::string_view body, std::string* why) override;

  OtlpOptions options_;
  NameValues resource_;
  PushQueue push_;
  SeriesStarts own_starts_;              // when started without the agent's
  SeriesStarts* starts_ = &own_starts_;  // the agent's, from start(SinkContext)
  int64_t last_tick_ms_ = 0;             // the end of the last tick: where a new series starts
};

}  // namespace wattprobe
