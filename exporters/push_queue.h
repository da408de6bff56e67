#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/snapshot.h"
#include "exporters/disk_queue.h"

namespace wattprobe {

/// What one push protocol (remote-write, OTLP) adds to the shared delivery machinery: how
/// queued ticks become a request, which headers carry it, what a 2xx answer says.
class PushProtocol {
 public:
  virtual ~PushProtocol() = default;

  /// The headers and credentials of one request, read now (secret files are re-read before
  /// every request, so a rotated secret is picked up without a restart).
  struct Request {
    std::vector<std::string> header_lines;  // "Name: value"
    std::string basic_auth_user;            // with basic_auth_password; empty: none
    std::string basic_auth_password;
  };

  /// Merges the batch's records (one tick each) into one request body. `samples` is how many
  /// samples (data points) it holds; `corrupt` counts records that could not be read (left out).
  /// False when nothing in the batch is readable.
  virtual bool build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                             uint64_t* corrupt) = 0;
  /// Protocol headers and credentials; an error (a secret file unreadable or refused) fails this
  /// attempt as `credentials`, to be retried.
  virtual Result<Request> request() = 0;
  /// From the body of a 2xx answer: the samples the receiver says it rejected anyway (OTLP's
  /// partial success), and why. 0 for protocols without partial success.
  virtual uint64_t rejected_in_success(std::string_view /*body*/, std::string* /*why*/) {
    return 0;
  }
};

/// Options shared by every push protocol; each protocol's options fill these.
struct PushQueueOptions {
  std::string url;      // where every request is POSTed
  std::string name;     // "remote-write", "OTLP": how log lines and help texts name it
  std::string family;   // "remote_write", "otlp": wattprobe_agent_<family>_* families
  std::string ca_file;  // extra CA bundle (PEM); empty: the system store. Verification is on.
  std::filesystem::path queue_dir;
  std::size_t queue_max_bytes = std::size_t{64} << 20;
  bool queue_fsync_each_append = true;
  std::chrono::milliseconds batch_interval{1000};
  std::size_t max_samples_per_request = 2000;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  std::chrono::milliseconds backoff_min{500};
  std::chrono::milliseconds backoff_max{30000};
  std::chrono::milliseconds retry_after_max{std::chrono::minutes(5)};
  std::chrono::milliseconds stop_flush_timeout{2000};
  /// Adds reason="partial" to the dropped family (protocols whose 2xx may reject samples).
  bool has_partial_success = false;
};

/// The delivery half of a push exporter, one implementation for every protocol: a bounded
/// on-disk queue of ticks and a sender thread that posts the oldest records and removes them
/// only after a 2xx, so an outage of the receiver or a restart of the agent loses nothing within
/// `queue_max_bytes`. 5xx, 429 and connection errors are retried with exponential backoff (a
/// Retry-After replaces the delay); any other 4xx drops that batch (counted as rejected), since
/// sending it again would fail again and block everything behind it.
class PushQueue {
 public:
  /// `protocol` must outlive this object; it is called on the sender thread only.
  PushQueue(PushQueueOptions options, PushProtocol& protocol);
  ~PushQueue();  // stop()
  PushQueue(const PushQueue&) = delete;
  PushQueue& operator=(const PushQueue&) = delete;

  /// Opens (and replays) the disk queue and starts the sender thread. Call once, at start-up.
  Result<bool> start();
  /// Starts the stop without waiting: the sender keeps sending for stop_flush_timeout, then
  /// ends; the rest stays queued.
  void request_stop();
  /// request_stop(), then waits for the sender to end.
  void stop();

  /// Queues one tick's record on disk (the sampling thread). Touches only the local disk; a
  /// write error drops the tick and counts it.
  void append(std::string_view record, uint32_t samples);
  /// Series the encoder left out because a receiver would refuse them.
  void count_invalid(uint64_t samples) { dropped_invalid_ += samples; }
  bool started() const { return queue_ != nullptr; }

  bool wait_until_drained(std::chrono::milliseconds timeout) const;

  struct Counters {
    uint64_t samples_sent = 0;
    uint64_t requests_sent = 0;
    uint64_t requests_retried = 0;
    uint64_t dropped_queue_full = 0;
    uint64_t dropped_rejected = 0;
    uint64_t dropped_partial = 0;  // rejected inside a 2xx (OTLP partial success)
    uint64_t dropped_invalid = 0;
    uint64_t dropped_disk_error = 0;
    uint64_t dropped_corrupt = 0;
    uint64_t failed_timeout = 0;
    uint64_t failed_connect = 0;
    uint64_t failed_transport = 0;
    uint64_t failed_http_5xx = 0;
    uint64_t failed_http_429 = 0;
    uint64_t failed_http_4xx = 0;
    uint64_t failed_credentials = 0;
    uint64_t wire_bytes = 0;  // request bodies (as sent, compressed) that got a 2xx
    std::size_t queue_samples = 0;
    std::size_t queue_bytes = 0;
  };
  Counters counters() const;
  /// wattprobe_agent_<family>_* (queue depth and bytes, samples and bytes sent, retried,
  /// dropped and failed by reason, last success). Thread-safe.
  void append_families(std::vector<Family>& out) const;

 private:
  enum class Outcome { sent, rejected, retry };
  struct Attempt {
    Outcome outcome = Outcome::retry;
    std::chrono::milliseconds retry_after{-1};
    std::string body;  // the answer's body, for a 2xx's partial success
  };

  void run_sender();
  Attempt post(const std::string& body, std::chrono::steady_clock::time_point deadline);
  bool sleep_unless_stopping(std::chrono::milliseconds delay);

  PushQueueOptions options_;
  PushProtocol& protocol_;
  std::unique_ptr<DiskQueue> queue_;
  std::thread sender_;
  mutable std::mutex mu_;
  mutable std::condition_variable wake_;  // append → sender (full batch), stop → sender
  mutable std::condition_variable drained_;
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_;
  std::atomic<int64_t> stop_deadline_ns_{INT64_MAX};  // steady clock; read during a transfer
  void* curl_ = nullptr;                              // CURL*, used only by the sender thread
  void* multi_ = nullptr;                             // CURLM* running curl_'s transfers, likewise

  std::atomic<uint64_t> samples_sent_{0}, requests_sent_{0}, requests_retried_{0};
  std::atomic<uint64_t> dropped_rejected_{0}, dropped_partial_{0}, dropped_invalid_{0},
      dropped_disk_error_{0}, dropped_corrupt_{0};
  std::atomic<uint64_t> failed_timeout_{0}, failed_connect_{0}, failed_transport_{0},
      failed_http_5xx_{0}, failed_http_429_{0}, failed_http_4xx_{0}, failed_credentials_{0};
  std::atomic<uint64_t> wire_bytes_{0};
  std::atomic<int64_t> last_success_ms_{0};
};

/// RFC 9110 token characters: what a header name may hold.
bool is_header_name(std::string_view s);

/// Copies the delivery settings remote-write and OTLP share (same names in both option structs)
/// into the queue's options.
template <typename Options>
void copy_delivery(const Options& o, PushQueueOptions& p) {
  p.queue_max_bytes = o.queue_max_bytes;
  p.queue_fsync_each_append = o.queue_fsync_each_append;
  p.batch_interval = o.batch_interval;
  p.max_samples_per_request = o.max_samples_per_request;
  p.connect_timeout = o.connect_timeout;
  p.request_timeout = o.request_timeout;
  p.backoff_min = o.backoff_min;
  p.backoff_max = o.backoff_max;
  p.retry_after_max = o.retry_after_max;
  p.stop_flush_timeout = o.stop_flush_timeout;
}

/// The option suffixes a pusher gives the delivery settings it shares with the other: only the
/// names differ (remote-write's "queue-max-bytes", OTLP's "queue-bytes").
struct DeliveryOptionNames {
  std::string_view queue_bytes, request_timeout, flush_timeout;
};

/// Checks the delivery settings remote-write and OTLP share (queue, batching, timeouts, backoff)
/// alike; `bad(option suffix, value, why)` makes the protocol's error.
template <typename Options, typename Bad>
Result<bool> validate_delivery(const Options& o, const DeliveryOptionNames& name, const Bad& bad) {
  using std::chrono::milliseconds;
  auto ms = [](milliseconds d) { return std::to_string(d.count()) + "ms"; };
  if (o.state_dir.empty()) return bad("state-dir", "", "is required for the disk queue");
  if (o.queue_max_bytes < (std::size_t{64} << 10))
    return bad(name.queue_bytes, std::to_string(o.queue_max_bytes), "must be at least 65536");
  if (o.batch_interval < milliseconds(10) || o.batch_interval > milliseconds(60000))
    return bad("batch-interval", ms(o.batch_interval), "must be between 10ms and 60s");
  if (o.max_samples_per_request < 1 || o.max_samples_per_request > 1000000)
    return bad("max-samples-per-request", std::to_string(o.max_samples_per_request),
               "must be between 1 and 1000000");
  if (o.connect_timeout <= milliseconds(0))
    return bad("connect-timeout", ms(o.connect_timeout), "must be positive");
  if (o.request_timeout <= milliseconds(0))
    return bad(name.request_timeout, ms(o.request_timeout), "must be positive");
  if (o.backoff_min <= milliseconds(0))
    return bad("backoff-min", ms(o.backoff_min), "must be positive");
  if (o.backoff_max < o.backoff_min)
    return bad("backoff-max", ms(o.backoff_max), "must not be below backoff-min");
  if (o.retry_after_max < milliseconds(0))
    return bad("retry-after-max", ms(o.retry_after_max), "must not be negative");
  if (o.stop_flush_timeout < milliseconds(0))
    return bad(name.flush_timeout, ms(o.stop_flush_timeout), "must not be negative");
  return true;
}

}  // namespace wattprobe
