#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/held_file.h"
#include "agent/base/option_table.h"
#include "agent/base/result.h"
#include "agent/base/sink.h"
#include "agent/base/snapshot.h"
#include "exporters/disk_queue.h"
#include "exporters/push_queue.h"

namespace prometheus {
class WriteRequest;
}

namespace wattprobe {

struct RemoteWriteOptions {
  std::string url;  // http:// or https://, e.g. http://prometheus:9090/api/v1/write
  /// HTTP Basic auth: the user here, the password read from `password_file` (re-read before
  /// every request, so a rotated secret is picked up without a restart).
  std::string basic_auth_user;
  std::string password_file;
  /// `Authorization: Bearer <token>` with the token read from this file (re-read likewise).
  std::string bearer_token_file;
  /// Extra request headers (e.g. X-Scope-OrgID). Protocol and auth headers cannot be overridden.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Extra request headers whose value is a secret in a file (NAME, FILE), re-read before every
  /// request like the token, so an API key stays out of the command line and the config file.
  std::vector<std::pair<std::string, std::string>> header_files;
  /// The secret files above opened before the privilege drop (hold_secret_files), by path: a
  /// file only root can read is still read through them once the agent is unprivileged.
  std::map<std::string, HeldFile> held_secrets;
  /// Labels added to every pushed series that lacks a label of that name (like Prometheus's
  /// external_labels), e.g. instance=<host>; an empty value adds nothing.
  std::vector<std::pair<std::string, std::string>> labels;
  /// Extra CA bundle (PEM) for https; empty = the system store. Peer verification is always on.
  std::string ca_file;
  /// The queue lives in <state_dir>/remote-write.
  std::filesystem::path state_dir;
  std::size_t queue_max_bytes = std::size_t{64} << 20;
  bool queue_fsync_each_append = true;
  /// The sender wakes this often (or sooner when a full request is waiting).
  std::chrono::milliseconds batch_interval{1000};
  std::size_t max_samples_per_request = 2000;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  /// Retry delay: starts at backoff_min, doubles per failed attempt up to backoff_max. A
  /// Retry-After from the receiver replaces it, capped at retry_after_max.
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds retry_after_max{std::chrono::minutes(5)};
  /// How long stop() keeps sending; what is left stays on disk for the next start.
  std::chrono::milliseconds stop_flush_timeout{2000};
};

/// Opens every secret file of `o` that can be opened now and keeps it in `o.held_secrets`; one
/// that cannot is left to the reader, which reports it while the agent runs.
void hold_secret_files(RemoteWriteOptions& o);

/// Names the first wrong field and its value ("remote-write url \"ftp://x\": ..."); nullopt when
/// the options can be used. Never repeats a header value or a credential.
Result<bool> validate(const RemoteWriteOptions& options);

/// --remote-write-*. The default instance label, the state folder and what needs the URL are
/// set and checked where the options are read.
OptionTable<RemoteWriteOptions> remote_write_option_table();

/// Prometheus remote-write 1.0 push: this class encodes each tick's snapshot as one queue
/// record (a snappy-compressed protobuf WriteRequest) and merges queued records into requests;
/// the shared PushQueue keeps them on disk and delivers them (exporters/push_queue.h).
class RemoteWrite : public SnapshotSink, private PushProtocol {
 public:
  explicit RemoteWrite(RemoteWriteOptions options);
  ~RemoteWrite() override;  // stop()
  RemoteWrite(const RemoteWrite&) = delete;
  RemoteWrite& operator=(const RemoteWrite&) = delete;

  /// Opens (and replays) the disk queue and starts the sender thread. Call once, at start-up.
  Result<bool> start();
  /// Starts the stop without waiting: the sender keeps sending for stop_flush_timeout, then
  /// ends; the rest stays queued. Lets the caller shut other parts down meanwhile.
  void request_stop() { push_.request_stop(); }
  /// request_stop(), then waits for the sender to end.
  void stop() { push_.stop(); }
  /// Called by the sampling thread each tick. Converts every series to a TimeSeries (labels:
  /// __name__ plus the series labels, sorted by name, unique, empty values left out; one sample
  /// at snapshot.timestamp_ms), a histogram to its classic _bucket{le}, _sum and _count series,
  /// adds a staleness marker (Prometheus's StaleNaN) for each series the previous tick had and
  /// this one lacks, and appends them to the disk queue as one record. Touches only the local
  /// disk. Markers are samples in every count.
  void enqueue(const Snapshot& snapshot);
  /// wattprobe_agent_remote_write_* families (queue depth and bytes, samples and bytes sent,
  /// retried, dropped and failed by reason). Thread-safe.
  void append_families(std::vector<Family>& out) const override { push_.append_families(out); }

  // As a sink of the running agent: start(), enqueue() each snapshot, and the stop in two halves.
  Result<bool> start(const SinkContext&) override { return start(); }
  void on_snapshot(const SnapshotPtr& snapshot) override { enqueue(*snapshot); }
  void begin_stop() override { request_stop(); }
  void finish_stop() override { stop(); }

  /// Waits until the queue is empty (tests, and `stop` callers that want to know).
  bool wait_until_drained(std::chrono::milliseconds timeout) const {
    return push_.wait_until_drained(timeout);
  }

  /// The counters behind the families, for tests and `doctor`.
  using Counters = PushQueue::Counters;
  Counters counters() const { return push_.counters(); }

 private:
  bool build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                     uint64_t* corrupt) override;
  Result<Request> request() override;

  RemoteWriteOptions options_;
  PushQueue push_;
  /// The series of the last enqueued tick (their labels): what the next tick lacks is marked
  /// stale. Sampling thread only; empty after a restart, so no marker spans one.
  std::unique_ptr<prometheus::WriteRequest> last_tick_;
};

}  // namespace wattprobe
