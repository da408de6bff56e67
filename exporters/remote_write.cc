#include "exporters/remote_write.h"

#include <curl/curl.h>
#include <snappy.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <limits>
#include <map>
#include <string_view>
#include <unordered_set>

#include "agent/base/log.h"
#include "agent/base/secret_file.h"
#include "agent/base/text_file.h"
#include "exporters/remote_write.pb.h"

#ifndef WATTPROBE_VERSION
#define WATTPROBE_VERSION "0.1.0"
#endif

namespace wattprobe {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Prometheus's staleness marker: a NaN with this exact bit pattern (model/value.StaleNaN).
constexpr uint64_t kStaleNaN = 0x7ff0000000000002;

// A queue record or request bigger than this is damage, not data (a tick is kilobytes).
constexpr std::size_t kMaxUncompressedBytes = 64u << 20;
constexpr std::size_t kMaxErrorBodyBytes = 1024;

bool is_metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

bool is_label_name(std::string_view s) {
  return is_metric_name(s) && s.find(':') == std::string_view::npos;
}

// RFC 9110 token characters: what a header name may hold.
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (std::isalnum(static_cast<unsigned char>(c))) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string quoted(std::string_view s) { return quote_for_error(s); }

// Reads a one-line secret file; the trailing newline editors add is not part of the secret.
size_t collect_body(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  std::size_t n = size * count;
  if (body->size() < kMaxErrorBodyBytes)
    body->append(data, std::min(n, kMaxErrorBodyBytes - body->size()));
  return n;
}

// Retry-After in its delta-seconds form; the HTTP-date form is rare from metric receivers
// and falls back to the ordinary backoff.
size_t collect_retry_after(char* data, size_t size, size_t count, void* user) {
  std::size_t n = size * count;
  std::string_view line(data, n);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size() && lower(line.substr(0, kName.size())) == kName) {
    std::string_view v = trim(line.substr(kName.size()));
    long seconds = -1;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
    if (ec == std::errc() && end == v.data() + v.size() && seconds >= 0)
      *static_cast<long*>(user) = seconds;
  }
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
CURLcode perform_until(CURL* curl, CURLM* multi, Clock::time_point deadline,
                       const std::atomic<int64_t>& stop_deadline_ns) {
  if (curl_multi_add_handle(multi, curl) != CURLM_OK) return CURLE_FAILED_INIT;
  CURLcode rc = CURLE_OK;
  for (;;) {
    int running = 0;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      rc = CURLE_FAILED_INIT;
      break;
    }
    if (running == 0) {
      int left = 0;
      rc = CURLE_GOT_NOTHING;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == curl) rc = msg->data.result;
      }
      break;
    }
    auto now = Clock::now();
    if (now > deadline || to_ns(now) > stop_deadline_ns.load()) {
      rc = CURLE_OPERATION_TIMEDOUT;
      break;
    }
    curl_multi_poll(multi, nullptr, 0, static_cast<int>(kStopCheckSlice.count()), nullptr);
  }
  curl_multi_remove_handle(multi, curl);
  return rc;
}

// The endpoint without user info or query, for messages: enough to find it, never a secret.
std::string redact(const std::string& url) {
  std::string out = url.substr(0, url.find_first_of("?#"));
  auto scheme = out.find("://");
  auto at = out.find('@');
  auto slash = out.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (scheme != std::string::npos && at != std::string::npos &&
      (slash == std::string::npos || at < slash))
    out.erase(scheme + 3, at - scheme - 2);
  return out;
}

// `le` as prometheus-cpp's text exposition writes it (%.16g: 0.0005, not 5e-04), so a pushed
// bucket and a scraped one are the same series.
std::string format_bound(double bound) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", std::numeric_limits<double>::max_digits10 - 1, bound);
  return buf;
}

std::string series_key(const prometheus::TimeSeries& ts) {
  std::string key;
  for (const auto& l : ts.labels()) {
    key += l.name();
    key += '\0';
    key += l.value();
    key += '\0';
  }
  return key;
}

}  // namespace

void hold_secret_files(RemoteWriteOptions& o) {
  std::vector<std::string> files = {o.bearer_token_file, o.password_file};
  for (const auto& [name, file] : o.header_files) files.push_back(file);
  for (const std::string& file : files) {
    if (file.empty() || o.held_secrets.count(file)) continue;
    if (auto held = HeldFile::open(file)) o.held_secrets.emplace(file, std::move(*held));
  }
}

Result<bool> validate(const RemoteWriteOptions& o) {
  auto bad = [](std::string_view field, std::string_view value, std::string_view why) {
    return invalid("remote-write-" + std::string(field),
                   (value.empty() ? "" : quoted(value) + " ") + std::string(why));
  };
  auto ms = [](milliseconds d) { return std::to_string(d.count()) + "ms"; };
  // A URL with credentials is not quoted back: its password would reach the log.
  const std::string shown_url =
      url_has_credentials(o.url) ? std::string("(a URL with credentials)") : o.url;
  if (!(o.url.starts_with("http://") || o.url.starts_with("https://")) || o.url.size() < 9)
    return bad("url", shown_url, "must be an http:// or https:// URL");
  for (char c : o.url)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
      return bad("url", shown_url, "must not contain spaces or control characters");
  if (!o.basic_auth_user.empty() && o.password_file.empty())
    return bad("password-file", "", "is required with basic-auth-user");
  if (o.basic_auth_user.empty() && !o.password_file.empty())
    return bad("basic-auth-user", "", "is required with password-file");
  if (!o.basic_auth_user.empty() && !o.bearer_token_file.empty())
    return bad("bearer-token-file", o.bearer_token_file,
               "cannot be combined with basic-auth-user: choose one");
  static const std::vector<std::string> kReserved = {"authorization",
                                                     "content-encoding",
                                                     "content-type",
                                                     "content-length",
                                                     "host",
                                                     "user-agent",
                                                     "x-prometheus-remote-write-version",
                                                     "transfer-encoding",
                                                     "connection"};
  for (const auto& [name, value] : o.headers) {
    if (!is_token(name)) return bad("header", name, "is not a valid HTTP header name");
    if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end())
      return bad("header", name, "is set by the remote-write protocol and cannot be overridden");
    for (char c : value)
      if (c == '\r' || c == '\n' || c == '\0')
        return bad("header", name, "value must not contain CR, LF or NUL");
  }
  for (std::size_t i = 0; i < o.header_files.size(); ++i) {
    const std::string& name = o.header_files[i].first;
    if (!is_token(name)) return bad("header-file", name, "is not a valid HTTP header name");
    if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end())
      return bad("header-file", name,
                 "is set by the remote-write protocol and cannot be overridden");
    auto same = [&](const auto& h) { return lower(h.first) == lower(name); };
    if (std::any_of(o.headers.begin(), o.headers.end(), same) ||
        std::any_of(o.header_files.begin(), o.header_files.begin() + i, same))
      return bad("header-file", name, "is given twice");
  }
  for (std::size_t i = 0; i < o.labels.size(); ++i) {
    const std::string& name = o.labels[i].first;
    if (!is_label_name(name) || name.starts_with("__") || name == "le")
      return bad("label", name, "is not a label name a series may carry");
    for (std::size_t j = 0; j < i; ++j)
      if (o.labels[j].first == name) return bad("label", name, "is given twice");
  }
  if (o.state_dir.empty()) return bad("state-dir", "", "is required for the disk queue");
  if (o.queue_max_bytes < (std::size_t{64} << 10))
    return bad("queue-max-bytes", std::to_string(o.queue_max_bytes), "must be at least 65536");
  if (o.batch_interval < milliseconds(10) || o.batch_interval > milliseconds(60000))
    return bad("batch-interval", ms(o.batch_interval), "must be between 10ms and 60s");
  if (o.max_samples_per_request < 1 || o.max_samples_per_request > 1000000)
    return bad("max-samples-per-request", std::to_string(o.max_samples_per_request),
               "must be between 1 and 1000000");
  if (o.connect_timeout <= milliseconds(0))
    return bad("connect-timeout", ms(o.connect_timeout), "must be positive");
  if (o.request_timeout <= milliseconds(0))
    return bad("request-timeout", ms(o.request_timeout), "must be positive");
  if (o.backoff_min <= milliseconds(0))
    return bad("backoff-min", ms(o.backoff_min), "must be positive");
  if (o.backoff_max < o.backoff_min)
    return bad("backoff-max", ms(o.backoff_max), "must not be below backoff-min");
  if (o.retry_after_max < milliseconds(0))
    return bad("retry-after-max", ms(o.retry_after_max), "must not be negative");
  if (o.stop_flush_timeout < milliseconds(0))
    return bad("stop-flush-timeout", ms(o.stop_flush_timeout), "must not be negative");
  return true;
}

RemoteWrite::RemoteWrite(RemoteWriteOptions options) : options_(std::move(options)) {}

RemoteWrite::~RemoteWrite() {
  stop();
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM*>(multi_));
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<bool> RemoteWrite::start() {
  if (auto valid = validate(options_); !valid.ok()) return valid.error();
  // Not thread-safe, so here at start-up; reference counted, so other users of curl are fine.
  curl_global_init(CURL_GLOBAL_DEFAULT);
  curl_ = curl_easy_init();
  multi_ = curl_multi_init();
  if (curl_ == nullptr || multi_ == nullptr)
    return Error{ErrorKind::transient, "", "curl_easy_init or curl_multi_init failed"};
  DiskQueueOptions q;
  q.dir = options_.state_dir / "remote-write";
  q.max_bytes = options_.queue_max_bytes;
  q.fsync_each_append = options_.queue_fsync_each_append;
  auto queue = DiskQueue::open(std::move(q));
  if (!queue) return queue.error();
  queue_ = std::move(queue.value());
  sender_ = std::thread([this] { run_sender(); });
  return true;
}

void RemoteWrite::request_stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || !sender_.joinable()) return;
    stopping_ = true;
    stop_deadline_ = Clock::now() + options_.stop_flush_timeout;
    stop_deadline_ns_ = to_ns(stop_deadline_);
  }
  wake_.notify_all();
}

void RemoteWrite::stop() {
  request_stop();
  if (!sender_.joinable()) return;
  sender_.join();
  queue_->sync();
}

void RemoteWrite::enqueue(const Snapshot& snapshot) {
  if (!queue_) return;
  prometheus::WriteRequest request;
  uint32_t samples = 0;
  uint64_t invalid = 0;
  std::vector<std::pair<std::string_view, std::string_view>> labels;
  // One TimeSeries; `le` is the bucket bound of a histogram's _bucket series, else empty.
  auto add = [&](std::string_view name, const Labels& series_labels, std::string_view le,
                 double value) {
    labels.clear();
    labels.emplace_back("__name__", name);
    if (!le.empty()) labels.emplace_back("le", le);
    for (const auto& [label, label_value] : series_labels) {
      if (!is_label_name(label) || label == "__name__" || (!le.empty() && label == "le")) {
        ++invalid;
        return;
      }
      // An empty value means "no such label" to Prometheus; sending it only costs bytes.
      if (!label_value.empty()) labels.emplace_back(label, label_value);
    }
    // The host's labels, where the series has no label of that name (as Prometheus's
    // external_labels): without them every agent pushing to one receiver writes the same series.
    const std::size_t own = labels.size();
    for (const auto& [label, label_value] : options_.labels) {
      bool taken = false;
      for (std::size_t i = 0; i < own && !taken; ++i) taken = labels[i].first == label;
      if (!taken && !label_value.empty()) labels.emplace_back(label, label_value);
    }
    std::stable_sort(labels.begin(), labels.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    // A duplicate name would make the receiver reject the whole request with everyone
    // else's samples in it; the series is dropped here instead, and counted.
    for (std::size_t i = 1; i < labels.size(); ++i) {
      if (labels[i].first == labels[i - 1].first) {
        ++invalid;
        return;
      }
    }
    auto* ts = request.add_timeseries();
    for (const auto& [label, label_value] : labels) {
      auto* l = ts->add_labels();
      l->set_name(std::string(label));
      l->set_value(std::string(label_value));
    }
    auto* s = ts->add_samples();
    s->set_value(value);
    s->set_timestamp(snapshot.timestamp_ms);
    ++samples;
  };
  for (const auto& family : snapshot.families) {
    if (!is_metric_name(family.name)) {
      invalid += family.series.size() + (family.histogram ? 1 : 0);
      continue;
    }
    for (const auto& series : family.series) add(family.name, series.labels, "", series.value);
    if (family.type == MetricType::histogram && family.histogram) {
      // The classic series a scrape of /metrics makes of it, so a remote store holds the same
      // series as a scraping Prometheus would (le written as the text exposition writes it).
      const Histogram& h = *family.histogram;
      const Labels none;
      for (std::size_t i = 0; i < h.bounds.size() && i < h.cumulative.size(); ++i) {
        add(family.name + "_bucket", none, format_bound(h.bounds[i]),
            static_cast<double>(h.cumulative[i]));
      }
      add(family.name + "_bucket", none, "+Inf", static_cast<double>(h.count));
      add(family.name + "_sum", none, "", h.sum);
      add(family.name + "_count", none, "", static_cast<double>(h.count));
    }
  }
  if (invalid > 0) dropped_invalid_ += invalid;

  // A series the last tick had and this one lacks (an expired workload, a process that left the
  // top N) gets Prometheus's staleness marker, as a scrape writes one: without it the series
  // would linger in the receiver's instant queries for its lookback (5 min by default).
  const int tick_series = request.timeseries_size();
  if (last_tick_) {
    std::unordered_set<std::string> present;
    present.reserve(static_cast<std::size_t>(tick_series));
    for (const auto& ts : request.timeseries()) present.insert(series_key(ts));
    for (auto& gone : *last_tick_->mutable_timeseries()) {
      if (present.count(series_key(gone)) > 0) continue;
      auto* marker = request.add_timeseries();
      marker->mutable_labels()->Swap(gone.mutable_labels());
      auto* s = marker->add_samples();
      s->set_value(std::bit_cast<double>(kStaleNaN));
      s->set_timestamp(snapshot.timestamp_ms);
      ++samples;
    }
  }
  if (samples == 0) return;
  std::string serialized = request.SerializeAsString();
  request.mutable_timeseries()->DeleteSubrange(tick_series,
                                               request.timeseries_size() - tick_series);
  if (!last_tick_) last_tick_ = std::make_unique<prometheus::WriteRequest>();
  last_tick_->Swap(&request);
  std::string compressed;
  snappy::Compress(serialized.data(), serialized.size(), &compressed);
  if (auto appended = queue_->append(compressed, samples); !appended) {
    dropped_disk_error_ += samples;
    log_printf("remote-write: %llu samples not queued: %s",
               static_cast<unsigned long long>(samples), appended.error().message().c_str());
    return;
  }
  if (queue_->stats().samples >= options_.max_samples_per_request) wake_.notify_all();
}

bool RemoteWrite::build_request(const QueueBatch& batch, std::string* body, std::size_t* samples) {
  // Records hold one tick each; merging a series' samples across ticks into one TimeSeries
  // sends its labels once per request instead of once per tick.
  prometheus::WriteRequest merged;
  std::map<std::string, prometheus::TimeSeries*> by_series;
  std::string raw;
  *samples = 0;
  for (const auto& payload : batch.payloads) {
    std::size_t length = 0;
    prometheus::WriteRequest tick;
    if (!snappy::GetUncompressedLength(payload.data(), payload.size(), &length) ||
        length > kMaxUncompressedBytes ||
        !snappy::Uncompress(payload.data(), payload.size(), &raw) || !tick.ParseFromString(raw)) {
      ++dropped_corrupt_;
      continue;
    }
    for (auto& ts : *tick.mutable_timeseries()) {
      auto [it, fresh] = by_series.try_emplace(series_key(ts), nullptr);
      if (fresh) {
        it->second = merged.add_timeseries();
        it->second->mutable_labels()->Swap(ts.mutable_labels());
      }
      for (const auto& s : ts.samples()) *it->second->add_samples() = s;
      *samples += static_cast<std::size_t>(ts.samples_size());
    }
  }
  if (*samples == 0) return false;
  std::string serialized = merged.SerializeAsString();
  body->clear();
  snappy::Compress(serialized.data(), serialized.size(), body);
  return true;
}

RemoteWrite::Attempt RemoteWrite::post(const std::string& body, Clock::time_point deadline) {
  Attempt attempt;
  auto* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);

  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Content-Encoding: snappy");
  headers = curl_slist_append(headers, "Content-Type: application/x-protobuf");
  headers = curl_slist_append(headers, "X-Prometheus-Remote-Write-Version: 0.1.0");
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  for (const auto& [name, value] : options_.headers)
    headers = curl_slist_append(headers, (name + ": " + value).c_str());
  auto secret_in = [this](const std::string& path) {
    auto held = options_.held_secrets.find(path);
    return read_secret_file(path, held == options_.held_secrets.end() ? HeldFile() : held->second);
  };
  for (const auto& [name, file] : options_.header_files) {
    auto value = secret_in(file);
    if (!value) {
      curl_slist_free_all(headers);
      ++failed_credentials_;
      log_printf("remote-write: header %s: %s", name.c_str(), value.error().message().c_str());
      return attempt;
    }
    headers = curl_slist_append(headers, (name + ": " + *value).c_str());
  }
  std::string password;
  if (!options_.bearer_token_file.empty()) {
    auto token = secret_in(options_.bearer_token_file);
    if (!token) {
      curl_slist_free_all(headers);
      ++failed_credentials_;
      log_printf("remote-write: %s", token.error().message().c_str());
      return attempt;
    }
    headers = curl_slist_append(headers, ("Authorization: Bearer " + *token).c_str());
  }
  if (!options_.basic_auth_user.empty()) {
    auto secret = secret_in(options_.password_file);
    if (!secret) {
      curl_slist_free_all(headers);
      ++failed_credentials_;
      log_printf("remote-write: %s", secret.error().message().c_str());
      return attempt;
    }
    password = std::move(secret.value());
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, options_.basic_auth_user.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password.c_str());
  }

  std::string response;
  long retry_after_s = -1;
  auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
  long total_ms = static_cast<long>(
      std::max<int64_t>(1, std::min<int64_t>(options_.request_timeout.count(), remaining.count())));
  curl_easy_setopt(curl, CURLOPT_URL, options_.url.c_str());
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "wattprobe/" WATTPROBE_VERSION);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, total_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, collect_retry_after);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &retry_after_s);

  CURLcode rc = perform_until(curl, static_cast<CURLM*>(multi_), deadline, stop_deadline_ns_);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  // The password must not outlive the request in curl's handle or our heap.
  curl_easy_setopt(curl, CURLOPT_PASSWORD, "");
  std::fill(password.begin(), password.end(), '\0');

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
  std::string why = trim(response).empty() ? "" : ": " + quote_for_error(trim(response));
  log_printf("remote-write: %s answered %ld, batch dropped%s", redact(options_.url).c_str(), status,
             why.c_str());
  return attempt;
}

bool RemoteWrite::sleep_unless_stopping(milliseconds delay) {
  std::unique_lock lock(mu_);
  wake_.wait_for(lock, delay, [this] { return stopping_; });
  return !stopping_;
}

void RemoteWrite::run_sender() {
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
    if (!build_request(batch, &body, &samples)) {
      queue_->ack(batch.end_seq);  // nothing readable in it; counted as corrupt
      continue;
    }
    Attempt attempt = post(body, deadline);
    ++requests_sent_;
    // Counters before the ack: whoever sees the queue empty also sees them counted.
    if (attempt.outcome == Outcome::sent) {
      samples_sent_ += samples;
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

bool RemoteWrite::wait_until_drained(milliseconds timeout) const {
  if (!queue_) return true;
  auto until = Clock::now() + timeout;
  std::unique_lock lock(mu_);
  while (queue_->stats().records > 0) {
    if (Clock::now() >= until) return false;
    drained_.wait_for(lock, milliseconds(20));
  }
  return true;
}

RemoteWrite::Counters RemoteWrite::counters() const {
  Counters c;
  c.samples_sent = samples_sent_;
  c.requests_sent = requests_sent_;
  c.requests_retried = requests_retried_;
  c.dropped_rejected = dropped_rejected_;
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

void RemoteWrite::append_families(std::vector<Family>& out) const {
  Counters c = counters();
  auto gauge = [&](std::string name, std::string help, double v) {
    out.push_back(Family{std::move(name), std::move(help), MetricType::gauge, {{{}, v}}});
  };
  auto counter = [&](std::string name, std::string help, double v) {
    out.push_back(Family{std::move(name), std::move(help), MetricType::counter, {{{}, v}}});
  };
  auto by_reason = [&](std::string name, std::string help,
                       std::vector<std::pair<std::string, uint64_t>> reasons) {
    Family f{std::move(name), std::move(help), MetricType::counter, {}};
    for (auto& [reason, v] : reasons)
      f.series.push_back(Series{{{"reason", reason}}, static_cast<double>(v)});
    out.push_back(std::move(f));
  };
  gauge("wattprobe_agent_remote_write_queue_samples",
        "Samples waiting in the remote-write disk queue.", static_cast<double>(c.queue_samples));
  gauge("wattprobe_agent_remote_write_queue_bytes", "Bytes of queued remote-write records on disk.",
        static_cast<double>(c.queue_bytes));
  counter("wattprobe_agent_remote_write_samples_sent_total",
          "Samples the remote-write receiver accepted (2xx).", static_cast<double>(c.samples_sent));
  counter("wattprobe_agent_remote_write_sent_bytes_total",
          "Compressed request bytes the remote-write receiver accepted (2xx).",
          static_cast<double>(c.wire_bytes));
  counter("wattprobe_agent_remote_write_requests_retried_total",
          "Remote-write requests retried after 5xx, 429 or a connection error.",
          static_cast<double>(c.requests_retried));
  by_reason("wattprobe_agent_remote_write_samples_dropped_total",
            "Samples that will never be sent: queue_full (oldest dropped past the bound), "
            "rejected (4xx), invalid (bad label names), disk_error, corrupt (damaged on disk).",
            {{"queue_full", c.dropped_queue_full},
             {"rejected", c.dropped_rejected},
             {"invalid", c.dropped_invalid},
             {"disk_error", c.dropped_disk_error},
             {"corrupt", c.dropped_corrupt}});
  by_reason("wattprobe_agent_remote_write_requests_failed_total",
            "Remote-write requests that got no 2xx, by reason.",
            {{"timeout", c.failed_timeout},
             {"connect", c.failed_connect},
             {"transport", c.failed_transport},
             {"http_5xx", c.failed_http_5xx},
             {"http_429", c.failed_http_429},
             {"http_4xx", c.failed_http_4xx},
             {"credentials", c.failed_credentials}});
  int64_t last = last_success_ms_;
  gauge("wattprobe_agent_remote_write_last_success_timestamp_seconds",
        "When the receiver last accepted a request (0: never, since start).",
        static_cast<double>(last) / 1000.0);
}

}  // namespace wattprobe
