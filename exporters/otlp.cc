#include "exporters/otlp.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <snappy.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "agent/base/log.h"
#include "agent/base/secret_file.h"
#include "agent/base/text_file.h"
#include "exporters/otlp.pb.h"

#ifndef WATTPROBE_VERSION
#define WATTPROBE_VERSION "0.1.0"
#endif

namespace wattprobe {
namespace {

using std::chrono::milliseconds;

// A queue record bigger than this is damage, not data (a tick is kilobytes).
constexpr std::size_t kMaxUncompressedBytes = 64u << 20;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string serialize(const google::protobuf::MessageLite& m) {
  // Deterministic, so one tick always encodes to the same bytes (the golden request test).
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::string gzip(std::string_view data) {
  z_stream z{};
  // 15 + 16: a gzip header and trailer, which Content-Encoding: gzip means (not raw zlib).
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

uint64_t to_unix_nano(int64_t ms) { return ms > 0 ? static_cast<uint64_t>(ms) * 1'000'000u : 0; }

void add_attributes(google::protobuf::RepeatedPtrField<otlp::KeyValue>* out,
                    const NameValues& attributes) {
  for (const auto& [key, value] : attributes) {
    auto* kv = out->Add();
    kv->set_key(key);
    kv->mutable_value()->set_string_value(value);
  }
}

// A series' labels as attributes: an empty value is no label to Prometheus, so no attribute.
// False when a label has no name (no consumer could tell such attributes apart).
bool add_labels(google::protobuf::RepeatedPtrField<otlp::KeyValue>* out, const Labels& labels) {
  for (const auto& [name, value] : labels) {
    if (name.empty()) return false;
    if (value.empty()) continue;
    auto* kv = out->Add();
    kv->set_key(name);
    kv->mutable_value()->set_string_value(value);
  }
  return true;
}

std::string label(const Labels& labels, std::string_view name) {
  for (const auto& [n, v] : labels)
    if (n == name) return v;
  return {};
}

// The OpenTelemetry hardware conventions' component type of a wattprobe domain; empty for a
// domain that is part of another (core and uncore are inside package) or of the whole host
// (psys, platform: the host is E_host, wattprobe_node_host_*).
std::string_view hw_type(std::string_view domain) {
  if (domain == "package") return "cpu";
  if (domain == "dram") return "memory";
  if (domain == "gpu") return "gpu";
  return {};
}

}  // namespace

std::string otlp_unit(std::string_view f) {
  auto ends = [&](std::string_view suffix) { return f.ends_with(suffix); };
  if (ends("_grams_per_kwh")) return "g/kW.h";
  if (ends("_joules_total") || ends("_joules")) return "J";
  if (ends("_watts")) return "W";
  if (ends("_grams_total") || ends("_grams")) return "g";
  if (ends("_seconds_total") || ends("_seconds")) return "s";
  if (ends("_bytes_total") || ends("_bytes")) return "By";
  return "1";
}

NameValues otlp_resource(const OtlpOptions& o) {
  NameValues r;
  if (!o.host_name.empty()) r.emplace_back("host.name", o.host_name);
  if (!o.host_id.empty()) r.emplace_back("host.id", o.host_id);
  r.emplace_back("service.name", "wattprobe");
  r.emplace_back("service.version", WATTPROBE_VERSION);
  // Not a structured binding: clang 15 (Debian 12's, which builds the fuzz targets) refuses to
  // capture one in a lambda.
  for (const auto& attribute : o.resource_attributes) {
    auto it = std::find_if(r.begin(), r.end(),
                           [&](const auto& kv) { return kv.first == attribute.first; });
    if (it != r.end())
      it->second = attribute.second;
    else
      r.push_back(attribute);
  }
  return r;
}

Result<bool> validate(const OtlpOptions& o) {
  auto bad = [](std::string_view field, std::string_view value, std::string_view why) {
    return invalid("otlp-" + std::string(field),
                   (value.empty() ? "" : quote_for_error(value) + " ") + std::string(why));
  };
  const std::string shown =
      url_has_credentials(o.endpoint) ? std::string("(a URL with credentials)") : o.endpoint;
  if (!(o.endpoint.starts_with("http://") || o.endpoint.starts_with("https://")) ||
      o.endpoint.size() < 9)
    return bad("endpoint", shown, "must be an http:// or https:// URL");
  for (char c : o.endpoint)
    if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c)))
      return bad("endpoint", shown, "must not contain spaces or control characters");
  if (o.endpoint.find_first_of("?#") != std::string::npos)
    return bad("endpoint", shown, "must not hold a query or fragment: /v1/metrics is appended");
  static const std::vector<std::string> kReserved = {
      "content-encoding", "content-type",      "content-length", "host",
      "user-agent",       "transfer-encoding", "connection"};
  auto check_name = [&](const std::string& name, std::string_view option) -> Result<bool> {
    if (!is_header_name(name)) return bad(option, name, "is not a valid HTTP header name");
    if (std::find(kReserved.begin(), kReserved.end(), lower(name)) != kReserved.end())
      return bad(option, name, "is set by the OTLP protocol and cannot be overridden");
    return true;
  };
  for (const auto& [name, value] : o.headers) {
    if (auto r = check_name(name, "header"); !r.ok()) return r;
    for (char c : value)
      if (c == '\r' || c == '\n' || c == '\0')
        return bad("header", name, "value must not contain CR, LF or NUL");
  }
  for (const auto& [name, file] : o.header_files) {
    if (auto r = check_name(name, "header-file"); !r.ok()) return r;
    if (file.empty()) return bad("header-file", name, "needs a file");
  }
  for (std::size_t i = 0; i < o.headers.size() + o.header_files.size(); ++i) {
    const std::string& a =
        i < o.headers.size() ? o.headers[i].first : o.header_files[i - o.headers.size()].first;
    for (std::size_t j = 0; j < i; ++j) {
      const std::string& b =
          j < o.headers.size() ? o.headers[j].first : o.header_files[j - o.headers.size()].first;
      if (lower(a) == lower(b)) return bad("header", a, "is given twice");
    }
  }
  for (std::size_t i = 0; i < o.resource_attributes.size(); ++i) {
    const std::string& name = o.resource_attributes[i].first;
    if (name.empty()) return bad("resource-attribute", name, "needs a name");
    for (char c : name)
      if (std::iscntrl(static_cast<unsigned char>(c)) ||
          std::isspace(static_cast<unsigned char>(c)))
        return bad("resource-attribute", name,
                   "name must not contain spaces or control characters");
    for (std::size_t j = 0; j < i; ++j)
      if (o.resource_attributes[j].first == name)
        return bad("resource-attribute", name, "is given twice");
  }
  return validate_delivery(o, {"queue-bytes", "timeout", "flush-timeout"}, bad);
}

std::string encode_otlp_tick(const Snapshot& snapshot, const SeriesStarts& starts,
                             const NameValues& resource, uint32_t* points, uint64_t* invalid) {
  *points = 0;
  *invalid = 0;
  otlp::ExportMetricsServiceRequest request;
  auto* rm = request.add_resource_metrics();
  add_attributes(rm->mutable_resource()->mutable_attributes(), resource);
  auto* sm = rm->add_scope_metrics();
  sm->mutable_scope()->set_name("wattprobe");
  sm->mutable_scope()->set_version(WATTPROBE_VERSION);
  const uint64_t now = to_unix_nano(snapshot.timestamp_ms);

  auto new_metric = [&](const std::string& name, const std::string& help, std::string unit) {
    auto* m = sm->add_metrics();
    m->set_name(name);
    m->set_description(help);
    m->set_unit(std::move(unit));
    return m;
  };
  auto cumulative_sum = [](otlp::Metric* m) {
    auto* sum = m->mutable_sum();
    sum->set_aggregation_temporality(otlp::AGGREGATION_TEMPORALITY_CUMULATIVE);
    sum->set_is_monotonic(true);
    return sum;
  };
  auto number_point = [&](google::protobuf::RepeatedPtrField<otlp::NumberDataPoint>* out,
                          const Labels& labels, double value,
                          int64_t start_ms) -> otlp::NumberDataPoint* {
    otlp::NumberDataPoint point;
    if (!add_labels(point.mutable_attributes(), labels)) {
      ++*invalid;
      return nullptr;
    }
    point.set_start_time_unix_nano(to_unix_nano(start_ms));
    point.set_time_unix_nano(now);
    point.set_as_double(value);
    ++*points;
    auto* p = out->Add();
    p->Swap(&point);
    return p;
  };

  const Family* node_energy = nullptr;
  const Family* node_power = nullptr;
  const Family* host_energy = nullptr;
  const Family* host_power = nullptr;
  for (const Family& f : snapshot.families) {
    if (f.name == "wattprobe_node_energy_joules_total") node_energy = &f;
    if (f.name == "wattprobe_node_power_watts") node_power = &f;
    if (f.name == "wattprobe_node_host_energy_joules_total") host_energy = &f;
    if (f.name == "wattprobe_node_host_power_watts") host_power = &f;
    if (f.type == MetricType::histogram) {
      if (!f.histogram) continue;
      const Histogram& h = *f.histogram;
      auto* hist = new_metric(f.name, f.help, otlp_unit(f.name))->mutable_histogram();
      hist->set_aggregation_temporality(otlp::AGGREGATION_TEMPORALITY_CUMULATIVE);
      auto* p = hist->add_data_points();
      p->set_start_time_unix_nano(to_unix_nano(starts.start_ms(f.name, {})));
      p->set_time_unix_nano(now);
      p->set_count(h.count);
      p->set_sum(h.sum);
      // Prometheus buckets are cumulative (observations <= bound); OTLP's are per bucket.
      uint64_t below = 0;
      const std::size_t n = std::min(h.bounds.size(), h.cumulative.size());
      for (std::size_t i = 0; i < n; ++i) {
        p->add_explicit_bounds(h.bounds[i]);
        p->add_bucket_counts(h.cumulative[i] >= below ? h.cumulative[i] - below : 0);
        below = std::max(below, h.cumulative[i]);
      }
      p->add_bucket_counts(h.count >= below ? h.count - below : 0);
      ++*points;
      continue;
    }
    if (f.series.empty()) continue;
    otlp::Metric* m = new_metric(f.name, f.help, otlp_unit(f.name));
    if (f.type == MetricType::counter) {
      auto* sum = cumulative_sum(m);
      for (const Series& s : f.series)
        number_point(sum->mutable_data_points(), s.labels, s.value,
                     starts.start_ms(f.name, s.labels));
    } else {
      auto* gauge = m->mutable_gauge();
      for (const Series& s : f.series)
        number_point(gauge->mutable_data_points(), s.labels, s.value, 0);
    }
  }

  // The hardware conventions' names for what the node families measure: components from the
  // domains that do not overlap (core and uncore lie inside package), the whole host from the
  // agent's one host figure, E_host (the wall, else psys, else the components' sum), so that a
  // host with both psys and a BMC is not sent twice. Estimates (the model source) are no
  // hardware reading and are left out.
  auto hardware = [&](const Family* from, bool energy) {
    if (from == nullptr) return;
    otlp::Metric* part = nullptr;
    for (const Series& s : from->series) {
      const std::string source = label(s.labels, "source");
      const std::string domain = label(s.labels, "domain");
      const std::string socket = label(s.labels, "socket");
      if (source == "model" || source.empty()) continue;
      const std::string_view type = hw_type(domain);
      if (type.empty()) continue;
      Labels attrs = {{"hw.id", source + "_" + domain + (socket.empty() ? "" : "_" + socket)},
                      {"hw.type", std::string(type)}};
      if (part == nullptr) {
        part = new_metric(
            energy ? "hw.energy" : "hw.power",
            energy ? "Energy consumed by the component." : "Power consumed by the component.",
            energy ? "J" : "W");
        if (energy) cumulative_sum(part);
      }
      if (energy) {
        number_point(part->mutable_sum()->mutable_data_points(), attrs, s.value,
                     starts.start_ms(from->name, s.labels));
      } else {
        number_point(part->mutable_gauge()->mutable_data_points(), attrs, s.value, 0);
      }
    }
  };
  hardware(node_energy, true);
  hardware(node_power, false);
  // The host figure is measured only when every part of it was: the power gauge says so.
  const Series* host_now =
      host_power != nullptr && !host_power->series.empty() ? &host_power->series.front() : nullptr;
  if (host_now != nullptr && label(host_now->labels, "measured") != "false") {
    const Labels attrs = {{"hw.id", "host"}};
    if (host_energy != nullptr && !host_energy->series.empty()) {
      otlp::Metric* m =
          new_metric("hw.host.energy", "Total energy consumed by the entire physical host.", "J");
      number_point(cumulative_sum(m)->mutable_data_points(), attrs,
                   host_energy->series.front().value,
                   starts.start_ms(host_energy->name, host_energy->series.front().labels));
    }
    otlp::Metric* m = new_metric("hw.host.power",
                                 "Instantaneous power consumed by the entire physical host.", "W");
    number_point(m->mutable_gauge()->mutable_data_points(), attrs, host_now->value, 0);
  }
  return serialize(request);
}

namespace {

PushQueueOptions push_options(const OtlpOptions& o) {
  PushQueueOptions p;
  std::string base = o.endpoint;
  while (base.ends_with('/')) base.pop_back();
  p.url = base + "/v1/metrics";
  p.name = "OTLP";
  p.family = "otlp";
  p.ca_file = o.ca_file;
  p.queue_dir = o.state_dir / "otlp";
  copy_delivery(o, p);
  p.has_partial_success = true;
  return p;
}

}  // namespace

OtlpExporter::OtlpExporter(OtlpOptions options)
    : options_(std::move(options)),
      resource_(otlp_resource(options_)),
      push_(push_options(options_), *this) {}

OtlpExporter::~OtlpExporter() { push_.stop(); }

Result<bool> OtlpExporter::start() {
  if (auto valid = validate(options_); !valid.ok()) return valid.error();
  return push_.start();
}

void OtlpExporter::enqueue(const Snapshot& snapshot, const SeriesStarts& starts) {
  if (!push_.started()) return;
  uint32_t points = 0;
  uint64_t invalid = 0;
  std::string request = encode_otlp_tick(snapshot, starts, resource_, &points, &invalid);
  if (invalid > 0) push_.count_invalid(invalid);
  if (points == 0) return;
  // On disk with snappy like remote-write's records: cheap on the sampling thread; gzip, which
  // the Collector expects on the wire, is paid once per request by the sender.
  std::string compressed;
  snappy::Compress(request.data(), request.size(), &compressed);
  push_.append(compressed, points);
}

bool OtlpExporter::build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                                 uint64_t* corrupt) {
  // Records hold one tick each. Ticks with the same resource share one ResourceMetrics, and a
  // metric's points from every tick go under one Metric: its name, description and unit are
  // sent once per request instead of once per tick.
  otlp::ExportMetricsServiceRequest merged;
  struct Group {
    otlp::ScopeMetrics* scope = nullptr;
    std::map<std::pair<std::string, int>, otlp::Metric*> metrics;  // (name, data case)
  };
  std::map<std::string, Group> by_resource;
  std::string raw;
  *samples = 0;
  for (const auto& payload : batch.payloads) {
    std::size_t length = 0;
    otlp::ExportMetricsServiceRequest tick;
    if (!snappy::GetUncompressedLength(payload.data(), payload.size(), &length) ||
        length > kMaxUncompressedBytes ||
        !snappy::Uncompress(payload.data(), payload.size(), &raw) || !tick.ParseFromString(raw)) {
      ++*corrupt;
      continue;
    }
    for (auto& rm : *tick.mutable_resource_metrics()) {
      Group& g = by_resource[serialize(rm.resource())];
      if (g.scope == nullptr) {
        auto* out = merged.add_resource_metrics();
        out->mutable_resource()->Swap(rm.mutable_resource());
        g.scope = out->add_scope_metrics();
        if (rm.scope_metrics_size() > 0) *g.scope->mutable_scope() = rm.scope_metrics(0).scope();
      }
      for (auto& sm : *rm.mutable_scope_metrics()) {
        for (auto& m : *sm.mutable_metrics()) {
          auto [it, fresh] = g.metrics.try_emplace({m.name(), static_cast<int>(m.data_case())});
          if (fresh) {
            it->second = g.scope->add_metrics();
            it->second->Swap(&m);
          } else if (m.has_sum()) {
            for (auto& p : *m.mutable_sum()->mutable_data_points())
              it->second->mutable_sum()->add_data_points()->Swap(&p);
          } else if (m.has_gauge()) {
            for (auto& p : *m.mutable_gauge()->mutable_data_points())
              it->second->mutable_gauge()->add_data_points()->Swap(&p);
          } else if (m.has_histogram()) {
            for (auto& p : *m.mutable_histogram()->mutable_data_points())
              it->second->mutable_histogram()->add_data_points()->Swap(&p);
          }
        }
      }
    }
  }
  for (const auto& rm : merged.resource_metrics())
    for (const auto& sm : rm.scope_metrics())
      for (const auto& m : sm.metrics())
        *samples += static_cast<std::size_t>(m.has_sum()     ? m.sum().data_points_size()
                                             : m.has_gauge() ? m.gauge().data_points_size()
                                                             : m.histogram().data_points_size());
  if (*samples == 0) return false;
  std::string serialized = serialize(merged);
  *body = options_.gzip ? gzip(serialized) : std::move(serialized);
  return !body->empty();
}

void hold_secret_files(OtlpOptions& o) {
  for (const auto& [name, file] : o.header_files) {
    if (file.empty() || o.held_secrets.count(file)) continue;
    if (auto held = HeldFile::open(file)) o.held_secrets.emplace(file, std::move(*held));
  }
}

Result<PushProtocol::Request> OtlpExporter::request() {
  Request r;
  r.header_lines.push_back("Content-Type: application/x-protobuf");
  if (options_.gzip) r.header_lines.push_back("Content-Encoding: gzip");
  for (const auto& [name, value] : options_.headers) r.header_lines.push_back(name + ": " + value);
  for (const auto& [name, file] : options_.header_files) {
    // Held open since before the privilege drop, so a root-only 0600 secret stays readable.
    auto held = options_.held_secrets.find(file);
    auto secret =
        read_secret_file(file, held == options_.held_secrets.end() ? HeldFile() : held->second);
    if (!secret) return secret.error();
    r.header_lines.push_back(name + ": " + *secret);
  }
  return r;
}

uint64_t OtlpExporter::rejected_in_success(std::string_view body, std::string* why) {
  return otlp_rejected_points(body, why);
}

uint64_t otlp_rejected_points(std::string_view body, std::string* why) {
  otlp::ExportMetricsServiceResponse response;
  // An empty body is a full success; one that is no response message says nothing either way.
  if (body.empty() || body.size() > (1u << 30) ||
      !response.ParseFromArray(body.data(), static_cast<int>(body.size())))
    return 0;
  const auto& partial = response.partial_success();
  *why = partial.error_message();
  return partial.rejected_data_points() > 0 ? static_cast<uint64_t>(partial.rejected_data_points())
                                            : 0;
}

Result<bool> OtlpExporter::start(const SinkContext& context) {
  if (context.series_starts != nullptr) starts_ = context.series_starts;
  last_tick_ms_ = context.started_ms;
  return start();
}

void OtlpExporter::on_snapshot(const SnapshotPtr& snapshot) {
  starts_->observe(*snapshot, last_tick_ms_);
  enqueue(*snapshot, *starts_);
  last_tick_ms_ = snapshot->timestamp_ms;
}

OptionTable<OtlpOptions> otlp_option_table() {
  using O = OtlpOptions;
  using std::chrono::milliseconds;
  using std::chrono::minutes;
  OptionSpec<O> endpoint{
      "otlp-endpoint",
      "push every tick's series over OTLP/HTTP to <URL>/v1/metrics (e.g. http://collector:4318)",
      [](O& o, const std::vector<OptionValue>& v) {
        o.endpoint = v.back().value;
        if (v.back().origin == "command line" && url_has_credentials(o.endpoint)) {
          log_line(
              "warning: --otlp-endpoint carries credentials on the command line, where every "
              "local user can read them; use --otlp-header-file");
        }
      },
      [](const O& o) { return o.endpoint; }};
  OptionSpec<O> header{"otlp-header", "NAME=VALUE extra HTTP header for OTLP (repeatable)",
                       [](O& o, const std::vector<OptionValue>& values) {
                         for (const OptionValue& v : values) {
                           o.headers.push_back(name_value(v));
                           const std::string& name = o.headers.back().first;
                           if (v.origin == "command line" && is_credential_header(name)) {
                             log_line("warning: --otlp-header " + name +
                                      " looks like a credential and is on the command line, "
                                      "where every local user can read it; use "
                                      "--otlp-header-file " +
                                      name + "=FILE");
                           }
                         }
                       },
                       [](const O&) { return std::string(); }, true};
  return {
      std::move(endpoint),
      std::move(header),
      name_values_option("otlp-header-file", &O::header_files,
                         "NAME=FILE header whose value (a secret) is read from FILE before each "
                         "request (repeatable)"),
      choice_option("otlp-compression", &O::gzip, {{"gzip", true}, {"none", false}},
                    "request body compression"),
      file_option("otlp-ca-file", &O::ca_file, "extra CA bundle (PEM) to verify an https endpoint")
          .note(": the system store"),
      duration_option("otlp-timeout", &O::request_timeout, milliseconds(10), minutes(5),
                      "give up on a request after this long"),
      duration_option("otlp-backoff-min", &O::backoff_min, milliseconds(10), minutes(5),
                      "first retry delay after a failure, doubling per failure"),
      duration_option("otlp-backoff-max", &O::backoff_max, milliseconds(10), std::chrono::hours(1),
                      "longest retry delay"),
      name_values_option("otlp-resource-attribute", &O::resource_attributes,
                         "NAME=VALUE added to the OTLP resource (repeatable; replaces a default "
                         "of that name)"),
  };
}

}  // namespace wattprobe
