#include "exporters/remote_write.h"

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

namespace wattprobe {
namespace {

using std::chrono::milliseconds;

// Prometheus's staleness marker: a NaN with this exact bit pattern (model/value.StaleNaN).
constexpr uint64_t kStaleNaN = 0x7ff0000000000002;

// A queue record or request bigger than this is damage, not data (a tick is kilobytes).
constexpr std::size_t kMaxUncompressedBytes = 64u << 20;

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

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string quoted(std::string_view s) { return quote_for_error(s); }

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
    if (!is_header_name(name)) return bad("header", name, "is not a valid HTTP header name");
    if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end())
      return bad("header", name, "is set by the remote-write protocol and cannot be overridden");
    for (char c : value)
      if (c == '\r' || c == '\n' || c == '\0')
        return bad("header", name, "value must not contain CR, LF or NUL");
  }
  for (std::size_t i = 0; i < o.header_files.size(); ++i) {
    const std::string& name = o.header_files[i].first;
    if (!is_header_name(name)) return bad("header-file", name, "is not a valid HTTP header name");
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
  return validate_delivery(o, {"queue-max-bytes", "request-timeout", "stop-flush-timeout"}, bad);
}

namespace {

PushQueueOptions push_options(const RemoteWriteOptions& o) {
  PushQueueOptions p;
  p.url = o.url;
  p.name = "remote-write";
  p.family = "remote_write";
  p.ca_file = o.ca_file;
  p.queue_dir = o.state_dir / "remote-write";
  copy_delivery(o, p);
  return p;
}

}  // namespace

RemoteWrite::RemoteWrite(RemoteWriteOptions options)
    : options_(std::move(options)), push_(push_options(options_), *this) {}

RemoteWrite::~RemoteWrite() { push_.stop(); }

Result<bool> RemoteWrite::start() {
  if (auto valid = validate(options_); !valid.ok()) return valid.error();
  return push_.start();
}

void RemoteWrite::enqueue(const Snapshot& snapshot) {
  if (!push_.started()) return;
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
  if (invalid > 0) push_.count_invalid(invalid);

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
  push_.append(compressed, samples);
}

bool RemoteWrite::build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                                uint64_t* corrupt) {
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
      ++*corrupt;
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

Result<PushProtocol::Request> RemoteWrite::request() {
  Request r;
  r.header_lines = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                    "X-Prometheus-Remote-Write-Version: 0.1.0"};
  for (const auto& [name, value] : options_.headers) r.header_lines.push_back(name + ": " + value);
  // Files held open since before the privilege drop, so a root-only 0600 secret stays readable.
  auto secret_in = [this](const std::string& path) {
    auto held = options_.held_secrets.find(path);
    return read_secret_file(path, held == options_.held_secrets.end() ? HeldFile() : held->second);
  };
  for (const auto& [name, file] : options_.header_files) {
    auto value = secret_in(file);
    if (!value)
      return Error{value.error().kind, "", "header " + name + ": " + value.error().message()};
    r.header_lines.push_back(name + ": " + *value);
  }
  if (!options_.bearer_token_file.empty()) {
    auto token = secret_in(options_.bearer_token_file);
    if (!token) return token.error();
    r.header_lines.push_back("Authorization: Bearer " + *token);
  }
  if (!options_.basic_auth_user.empty()) {
    auto secret = secret_in(options_.password_file);
    if (!secret) return secret.error();
    r.basic_auth_user = options_.basic_auth_user;
    r.basic_auth_password = std::move(secret.value());
  }
  return r;
}

OptionTable<RemoteWriteOptions> remote_write_option_table() {
  using R = RemoteWriteOptions;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  using std::chrono::seconds;
  OptionSpec<R> url{"remote-write-url",
                    "push every tick's series to this Prometheus remote-write endpoint",
                    [](R& r, const std::vector<OptionValue>& v) {
                      r.url = v.back().value;
                      // Any local user reads a process's arguments in /proc/PID/cmdline.
                      if (v.back().origin == "command line" && url_has_credentials(r.url)) {
                        log_line(
                            "warning: --remote-write-url carries credentials on the command "
                            "line, where every local user can read them; use "
                            "--remote-write-username with --remote-write-password-file, or "
                            "--remote-write-bearer-token-file");
                      }
                    },
                    [](const R& r) { return r.url; }};
  OptionSpec<R> header{
      "remote-write-header", "NAME=VALUE extra HTTP header (repeatable)",
      [](R& r, const std::vector<OptionValue>& values) {
        for (const OptionValue& v : values) {
          r.headers.push_back(name_value(v));
          const std::string& name = r.headers.back().first;
          if (v.origin == "command line" && is_credential_header(name)) {
            log_line("warning: --remote-write-header " + name +
                     " looks like a credential and is on the command line, where every local "
                     "user can read it; use --remote-write-header-file " +
                     name + "=FILE, or put it in the config file (readable by the agent only)");
          }
        }
      },
      [](const R&) { return std::string(); }, true};
  OptionSpec<R> header_file{
      "remote-write-header-file",
      "NAME=FILE extra HTTP header whose secret value is read from FILE (repeatable)",
      [](R& r, const std::vector<OptionValue>& values) {
        for (const OptionValue& v : values) {
          auto [name, file] = name_value(v, "NAME=FILE");
          if (file.empty()) refuse_value(v, "expected NAME=FILE");
          r.header_files.emplace_back(name,
                                      secret_path_value(OptionValue{v.option, file, v.origin}));
        }
      },
      [](const R&) { return std::string(); }, true};
  return {
      std::move(url),
      secret_file_option("remote-write-bearer-token-file", &R::bearer_token_file,
                         "file holding a bearer token for remote-write"),
      text_option("remote-write-username", &R::basic_auth_user, "basic-auth user for remote-write"),
      secret_file_option("remote-write-password-file", &R::password_file,
                         "file holding the basic-auth password"),
      std::move(header),
      std::move(header_file),
      whole_option("remote-write-queue-bytes", &R::queue_max_bytes, 1 << 16, uint64_t{1} << 40,
                   "bound of the on-disk queue"),
      name_values_option("remote-write-label", &R::labels,
                         "NAME=VALUE added to every pushed series (repeatable)")
          .note(": instance=<hostname>, instance= for none"),
      file_option("remote-write-ca-file", &R::ca_file,
                  "extra CA bundle (PEM) to verify an https endpoint")
          .note(": the system store"),
      duration_option("remote-write-batch-interval", &R::batch_interval, milliseconds(10),
                      seconds(60), "send what is queued this often"),
      whole_option("remote-write-max-samples-per-request", &R::max_samples_per_request, 1, 1000000,
                   "samples per request"),
      duration_option("remote-write-timeout", &R::request_timeout, milliseconds(10), minutes(5),
                      "give up on a request after this long"),
      duration_option("remote-write-connect-timeout", &R::connect_timeout, milliseconds(10),
                      minutes(5), "give up connecting after this long"),
      duration_option("remote-write-backoff-min", &R::backoff_min, milliseconds(10), minutes(5),
                      "first retry delay after a failure, doubling per failure"),
      duration_option("remote-write-backoff-max", &R::backoff_max, milliseconds(10),
                      std::chrono::hours(1), "longest retry delay"),
      duration_option("remote-write-flush-timeout", &R::stop_flush_timeout, milliseconds(0),
                      seconds(60), "at stop, keep sending this long; the rest waits on disk"),
  };
}

}  // namespace wattprobe
