#include "exporters/push_queue.h"

#include <algorithm>

#include "agent/base/curl_library.h"
#include "agent/base/http_client.h"
#include "agent/base/log.h"
#include "agent/base/text_file.h"

#ifndef WATTPROBE_VERSION
#define WATTPROBE_VERSION "0.1.0"
#endif

namespace wattprobe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// An answer's body is read for its error text or an OTLP partial success, both small; past this
// it is damage or a misdirected endpoint, and only costs memory.
constexpr std::size_t kMaxAnswerBytes = 64u << 10;

size_t collect_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  std::size_t n = size * count;
  if (body->size() < kMaxAnswerBytes)
    body->append(data, std::min(n, kMaxAnswerBytes - body->size()));
  return n;
}

// Retry-After in its delta-seconds form; the HTTP-date form is rare from metric receivers
// and falls back to the ordinary backoff.
size_t collect_retry_after(char* data, size_t size, size_t count, void* user) {
  std::size_t n = size * count;
  if (auto seconds = parse_retry_after_header(std::string_view(data, n)))
    *static_cast<long*>(user) = static_cast<long>(*seconds);
  return n;
}

int64_t to_ns(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// How often a transfer looks at the stop deadline. curl's progress callback would be the
// natural place, but while a receiver stays silent curl calls it only about once a second,
// which made a stop with a hung receiver overrun its flush deadline by up to a second.
constexpr milliseconds kStopCheckSlice{50};

// Runs the transfer on `multi` in short polls until it ends, `deadline` passes or the stop
// deadline (set by another thread) passes; the last two count as a timeout.
CURLcode perform_until(const CurlApi& api, CURL* curl, CURLM* multi, Clock::time_point deadline,
                       const std::atomic<int64_t>& stop_deadline_ns) {
  if (api.multi_add_handle(multi, curl) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode rc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (api.multi_perform(multi, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    if (running == 0) {
      int left = 0;
      rc = CURLE_GOT_NOTHING;
      while (CURLMsg* msg = api.multi_info_read(multi, &left)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl) rc = msg->data.result;
      }
      break;
    }
    auto now = Clock::now();
    if (now > deadline || to_ns(now) > stop_deadline_ns.load()) {
      rc = CURLE_OPERATION_TIMEDOUT;
      break;
    }
    api.multi_poll(multi, nullptr, 0, static_cast<int>(kStopCheckSlice.count()), nullptr);
  }
  api.multi_remove_handle(multi, curl);
  return rc;
}

}  // namespace

bool is_header_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

PushQueue::PushQueue(PushQueueOptions options, PushProtocol& protocol)
    : options_(std::move(options)), protocol_(protocol) {}

PushQueue::~PushQueue() {
  stop();
  // Both handles exist only if libcurl was loaded.
  if (multi_ != nullptr) curl_api()->multi_cleanup(static_cast<CURLM*>(multi_));
  if (curl_ != nullptr) curl_api()->easy_cleanup(static_cast<CURL*>(curl_));
}

Result<bool> PushQueue::start() {
  // Loaded (and curl_global_init'ed) at start-up, so a missing libcurl refuses the sink at once.
  const auto& lib = curl_api();
  if (!lib) return lib.error();
  const CurlApi& api = *lib;
  curl_ = api.easy_init();
  multi_ = api.multi_init();
  if (curl_ == nullptr || multi_ == nullptr)
    return Error{ErrorKind::transient, "", "curl_easy_init or curl_multi_init failed"};
  DiskQueueOptions q;
  q.dir = options_.queue_dir;
  q.max_bytes = options_.queue_max_bytes;
  q.fsync_each_append = options_.queue_fsync_each_append;
  auto queue = DiskQueue::open(std::move(q));
  if (!queue) return queue.error();
  queue_ = std::move(queue.value());
  sender_ = std::thread([this] { run_sender(); });
  return true;
}

void PushQueue::request_stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !sender_.joinable()) return;
    stopping_ = true;
    stop_deadline_ = Clock::now() + options_.stop_flush_timeout;
    stop_deadline_ns_ = to_ns(stop_deadline_);
  }
  wake_.notify_all();
}

void PushQueue::stop() {
  request_stop();
  if (!sender_.joinable()) return;
  sender_.join();
  queue_->sync();
}

void PushQueue::append(std::string_view record, uint32_t samples) {
  if (!queue_) return;
  if (auto appended = queue_->append(record, samples); !appended) {
    dropped_disk_error_ += samples;
    log_printf("%s: %llu samples not queued: %s", options_.name.c_str(),
               static_cast<unsigned long long>(samples), appended.error().message().c_str());
    return;
  }
  if (queue_->stats().samples >= options_.max_samples_per_request) wake_.notify_all();
}

PushQueue::Attempt PushQueue::post(const std::string& body, Clock::time_point deadline) {
  Attempt attempt;
  const CurlApi& api = *curl_api();  // start() refused without it
  auto* curl = static_cast<CURL*>(curl_);
  api.easy_reset(curl);

  auto request = protocol_.request();
  if (!request) {
    ++failed_credentials_;
    log_printf("%s: %s", options_.name.c_str(), request.error().message().c_str());
    return attempt;
  }
  struct curl_slist* headers = nullptr;
  headers = api.slist_append(headers, "Expect:");  // no 100-continue round trip
  for (const auto& line : request->header_lines) headers = api.slist_append(headers, line.c_str());
  if (!request->basic_auth_user.empty()) {
    api.easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    api.easy_setopt(curl, CURLOPT_USERNAME, request->basic_auth_user.c_str());
    api.easy_setopt(curl, CURLOPT_PASSWORD, request->basic_auth_password.c_str());
  }

  std::string& response = attempt.body;
  long retry_after_s = -1;
  auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  long total_ms = static_cast<long>(
      std::max<int64_t>(1, std::min<int64_t>(options_.request_timeout.count(), remaining.count())));
  api.easy_setopt(curl, CURLOPT_URL, options_.url.c_str());
  api.easy_setopt(curl, CURLOPT_POST, 1L);
  api.easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  api.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  api.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  api.easy_setopt(curl, CURLOPT_USERAGENT, "wattprobe/" WATTPROBE_VERSION);
  api.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(options_.connect_timeout.count()));
  api.easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  api.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  api.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  api.easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  api.easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) api.easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  api.easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  api.easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  api.easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_retry_after);
  api.easy_setopt(curl, CURLOPT_HEADERDATA, &retry_after_s);

  CURLcode rc = perform_until(api, curl, static_cast<CURLM*>(multi_), deadline, stop_deadline_ns_);
  long status = 0;
  api.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  api.slist_free_all(headers);
  // Secrets must not outlive the request in curl's handle or our heap.
  api.easy_setopt(curl, CURLOPT_PASSWORD, "");
  std::fill(request->basic_auth_password.begin(), request->basic_auth_password.end(), '\0');
  for (auto& line : request->header_lines) std::fill(line.begin(), line.end(), '\0');

  if (rc != CURLE_OK) {
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_ABORTED_BY_CALLBACK:
        ++failed_timeout_;
        break;
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        ++failed_connect_;
        break;
      default:
        ++failed_transport_;
        break;
    }
    return attempt;
  }
  if (status >= 200 && status < 300) {
    attempt.outcome = Outcome::sent;
    return attempt;
  }
  if (retry_after_s >= 0) attempt.retry_after = milliseconds(retry_after_s * 1000);
  if (status == 429) {
    ++failed_http_429_;
    return attempt;
  }
  if (status >= 500) {
    ++failed_http_5xx_;
    return attempt;
  }
  ++failed_http_4xx_;
  attempt.outcome = Outcome::rejected;
  std::string_view text = trim(response).substr(0, 1024);
  std::string why = text.empty() ? "" : ": " + quote_for_error(text);
  log_printf("%s: %s answered %ld, batch dropped%s", options_.name.c_str(),
             redact_url(options_.url).c_str(), status, why.c_str());
  return attempt;
}

bool PushQueue::sleep_unless_stopping(milliseconds delay) {
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, delay, [this] { return stopping_; });
  return !stopping_;
}

void PushQueue::run_sender() {
  milliseconds backoff = options_.backoff_min;
  bool last_failed = false;
  for (;;) {
    bool stopping;
    Clock::time_point deadline;
    {
      std::unique_lock lock(mu_);
      if (!stopping_ && queue_->stats().samples < options_.max_samples_per_request) {
        wake_.wait_for(lock, options_.batch_interval, [this] {
          return stopping_ || queue_->stats().samples >= options_.max_samples_per_request;
        });
      }
      stopping = stopping_;
      deadline = stopping ? stop_deadline_ : Clock::now() + options_.request_timeout;
    }
    if (stopping && (last_failed || Clock::now() >= deadline)) break;

    QueueBatch batch = queue_->peek(options_.max_samples_per_request);
    if (batch.empty()) {
      drained_.notify_all();
      if (stopping) break;
      continue;
    }
    std::string body;
    std::size_t samples = 0;
    uint64_t corrupt = 0;
    bool readable = protocol_.build_request(batch, &body, &samples, &corrupt);
    dropped_corrupt_ += corrupt;
    if (!readable) {
      queue_->ack(batch.end_seq);  // nothing readable in it; counted as corrupt
      continue;
    }
    Attempt attempt = post(body, deadline);
    ++requests_sent_;
    // Counters before the ack: whoever sees the queue empty also sees them counted.
    if (attempt.outcome == Outcome::sent) {
      std::string why;
      uint64_t refused =
          std::min<uint64_t>(protocol_.rejected_in_success(attempt.body, &why), samples);
      if (refused > 0) {
        dropped_partial_ += refused;
        log_printf("%s: %s accepted the request but rejected %llu of its %zu samples%s",
                   options_.name.c_str(), redact_url(options_.url).c_str(),
                   static_cast<unsigned long long>(refused), samples,
                   why.empty() ? "" : (": " + quote_for_error(why.substr(0, 1024))).c_str());
      }
      samples_sent_ += samples - refused;
      wire_bytes_ += body.size();
      last_success_ms_ = std::chrono::duration_cast<milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
      queue_->ack(batch.end_seq);
      backoff = options_.backoff_min;
      last_failed = false;
      continue;
    }
    if (attempt.outcome == Outcome::rejected) {
      dropped_rejected_ += samples;
      queue_->ack(batch.end_seq);
      last_failed = false;
      continue;
    }
    last_failed = true;
    if (stopping) break;  // no retries past stop(): the batch waits on disk
    ++requests_retried_;
    milliseconds delay = backoff;
    if (attempt.retry_after.count() >= 0)
      delay = std::min(attempt.retry_after, options_.retry_after_max);
    backoff = std::min(backoff * 2, options_.backoff_max);
    if (!sleep_unless_stopping(delay)) {
      // stop() came during the backoff: one last try within the flush deadline.
      last_failed = false;
    }
  }
  drained_.notify_all();
}

bool PushQueue::wait_until_drained(milliseconds timeout) const {
  if (!queue_) return true;
  auto until = Clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (queue_->stats().records > 0) {
    if (Clock::now() >= until) return false;
    drained_.wait_for(lock, milliseconds(20));
  }
  return true;
}

PushQueue::Counters PushQueue::counters() const {
  Counters c;
  c.samples_sent = samples_sent_;
  c.requests_sent = requests_sent_;
  c.requests_retried = requests_retried_;
  c.dropped_rejected = dropped_rejected_;
  c.dropped_partial = dropped_partial_;
  c.dropped_invalid = dropped_invalid_;
  c.dropped_disk_error = dropped_disk_error_;
  c.failed_timeout = failed_timeout_;
  c.failed_connect = failed_connect_;
  c.failed_transport = failed_transport_;
  c.failed_http_5xx = failed_http_5xx_;
  c.failed_http_429 = failed_http_429_;
  c.failed_http_4xx = failed_http_4xx_;
  c.failed_credentials = failed_credentials_;
  c.wire_bytes = wire_bytes_;
  c.dropped_corrupt = dropped_corrupt_;
  if (queue_) {
    auto s = queue_->stats();
    c.dropped_queue_full = s.dropped_samples_queue_full;
    c.dropped_corrupt += s.corrupt_samples;
    c.queue_samples = s.samples;
    c.queue_bytes = s.bytes;
  }
  return c;
}

void PushQueue::append_families(std::vector<Family>& out) const {
  Counters c = counters();
  const std::string prefix = "wattprobe_agent_" + options_.family + "_";
  const std::string& name = options_.name;
  std::string title = name;  // starts a sentence
  if (!title.empty())
    title[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(title[0])));
  auto gauge = [&](std::string suffix, std::string help, double v) {
    out.push_back(Family{prefix + suffix, std::move(help), MetricType::gauge, {{{}, v}}});
  };
  auto counter = [&](std::string suffix, std::string help, double v) {
    out.push_back(Family{prefix + suffix, std::move(help), MetricType::counter, {{{}, v}}});
  };
  auto by_reason = [&](std::string suffix, std::string help,
                       std::vector<std::pair<std::string, uint64_t>> reasons) {
    Family f{prefix + suffix, std::move(help), MetricType::counter, {}};
    for (auto& [reason, v] : reasons)
      f.series.push_back(Series{{{"reason", reason}}, static_cast<double>(v)});
    out.push_back(std::move(f));
  };
  gauge("queue_samples", "Samples waiting in the " + name + " disk queue.",
        static_cast<double>(c.queue_samples));
  gauge("queue_bytes", "Bytes of queued " + name + " records on disk.",
        static_cast<double>(c.queue_bytes));
  counter("samples_sent_total", "Samples the " + name + " receiver accepted (2xx).",
          static_cast<double>(c.samples_sent));
  counter("sent_bytes_total", "Compressed request bytes the " + name + " receiver accepted (2xx).",
          static_cast<double>(c.wire_bytes));
  counter("requests_retried_total",
          title + " requests retried after 5xx, 429 or a connection error.",
          static_cast<double>(c.requests_retried));
  std::vector<std::pair<std::string, uint64_t>> dropped = {{"queue_full", c.dropped_queue_full},
                                                           {"rejected", c.dropped_rejected}};
  std::string dropped_help =
      "Samples that will never be sent: queue_full (oldest dropped past the bound), "
      "rejected (4xx), ";
  if (options_.has_partial_success) {
    dropped.emplace_back("partial", c.dropped_partial);
    dropped_help += "partial (refused inside a 2xx partial success), ";
  }
  dropped.insert(dropped.end(), {{"invalid", c.dropped_invalid},
                                 {"disk_error", c.dropped_disk_error},
                                 {"corrupt", c.dropped_corrupt}});
  dropped_help += "invalid (bad label names), disk_error, corrupt (damaged on disk).";
  by_reason("samples_dropped_total", dropped_help, std::move(dropped));
  by_reason("requests_failed_total", title + " requests that got no 2xx, by reason.",
            {{"timeout", c.failed_timeout},
             {"connect", c.failed_connect},
             {"transport", c.failed_transport},
             {"http_5xx", c.failed_http_5xx},
             {"http_429", c.failed_http_429},
             {"http_4xx", c.failed_http_4xx},
             {"credentials", c.failed_credentials}});
  int64_t last = last_success_ms_;
  gauge("last_success_timestamp_seconds",
        "When the receiver last accepted a request (0: never, since start).",
        static_cast<double>(last) / 1000.0);
}

}  // namespace wattprobe
