#include "exporters/otlp.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "exporters/otlp.pb.h"
#include "exporters/remote_write.h"
#include "tests/support/fake_http_receiver.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::FakeHttpReceiver;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

// ---- The golden request, byte by byte from the OTLP specification ----------------------------
// Field numbers and wire types of opentelemetry-proto v1 (collector/metrics/v1, metrics/v1,
// common/v1, resource/v1), written here by hand so that a wrong number in otlp.proto
// cannot hide in both the encoder and the check.

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string key(int field, int wire) { return varint(static_cast<uint64_t>(field) << 3 | wire); }
std::string len(int field, const std::string& bytes) {  // wire type 2
  return key(field, 2) + varint(bytes.size()) + bytes;
}
std::string le64(uint64_t v) {
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}
std::string fixed64(int field, uint64_t v) { return key(field, 1) + le64(v); }  // wire type 1
std::string dbl(int field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  return fixed64(field, bits);
}
// common.v1.KeyValue{key = 1, value = 2: AnyValue{string_value = 1}}
std::string kv(const std::string& k, const std::string& v) { return len(1, k) + len(2, len(1, v)); }

constexpr int64_t kStartMs = 1'700'000'000'000;
constexpr int64_t kTickMs = 1'700'000'060'000;
constexpr uint64_t kStartNs = uint64_t{kStartMs} * 1'000'000;
constexpr uint64_t kTickNs = uint64_t{kTickMs} * 1'000'000;

Snapshot known_tick() {
  Snapshot s;
  s.timestamp_ms = kTickMs;
  s.families.push_back(Family{"wattprobe_workload_energy_joules_total",
                              "Energy attributed to a workload.",
                              MetricType::counter,
                              {Series{{{"workload", "a.service"}, {"pod", ""}}, 12.5}}});
  s.families.push_back(Family{"wattprobe_node_power_watts",
                              "Mean power over the last tick.",
                              MetricType::gauge,
                              {Series{{{"source", "rapl_powercap"}, {"domain", "psys"}}, 42.0}}});
  s.families.push_back(Family{"wattprobe_node_host_power_watts",
                              "The host's power.",
                              MetricType::gauge,
                              {Series{{{"basis", "psys"}, {"measured", "true"}}, 42.0}}});
  Family h{"wattprobe_agent_tick_duration_seconds", "Time one tick took.", MetricType::histogram};
  h.histogram = Histogram{{0.001, 0.01}, {3, 5}, 6, 0.5};
  s.families.push_back(std::move(h));
  return s;
}

const NameValues kResource = {{"host.name", "node-1"},
                              {"host.id", "0123456789abcdef0123456789abcdef"},
                              {"service.name", "wattprobe"},
                              {"service.version", "9.9.9"}};

SeriesStarts known_starts() {
  SeriesStarts starts;
  starts.restore({{"wattprobe_workload_energy_joules_total", {{"workload", "a.service"}}, kStartMs},
                  {"wattprobe_agent_tick_duration_seconds", {}, kStartMs}});
  return starts;
}

std::string golden_request(const std::string& scope_version) {
  // Resource{attributes = 1}
  std::string resource;
  for (const auto& [k, v] : kResource) resource += len(1, kv(k, v));
  // InstrumentationScope{name = 1, version = 2}
  std::string scope = len(1, "wattprobe") + len(2, scope_version);

  // A monotonic cumulative Sum. NumberDataPoint{start_time_unix_nano = 2 (fixed64),
  // time_unix_nano = 3 (fixed64), as_double = 4 (fixed64), attributes = 7}; the empty pod label
  // is no attribute. Sum{data_points = 1, aggregation_temporality = 2 (2: CUMULATIVE),
  // is_monotonic = 3}.
  std::string energy_point = fixed64(2, kStartNs) + fixed64(3, kTickNs) + dbl(4, 12.5) +
                             len(7, kv("workload", "a.service"));
  std::string sum = len(1, energy_point) + key(2, 0) + varint(2) + key(3, 0) + varint(1);
  // Metric{name = 1, description = 2, unit = 3, sum = 7}
  std::string energy = len(1, "wattprobe_workload_energy_joules_total") +
                       len(2, "Energy attributed to a workload.") + len(3, "J") + len(7, sum);

  // A Gauge{data_points = 1}: no start time.
  std::string power_point = fixed64(3, kTickNs) + dbl(4, 42.0) +
                            len(7, kv("source", "rapl_powercap")) + len(7, kv("domain", "psys"));
  std::string power = len(1, "wattprobe_node_power_watts") +
                      len(2, "Mean power over the last tick.") + len(3, "W") +
                      len(5, len(1, power_point));

  std::string host_gauge_point = fixed64(3, kTickNs) + dbl(4, 42.0) + len(7, kv("basis", "psys")) +
                                 len(7, kv("measured", "true"));
  std::string host_gauge = len(1, "wattprobe_node_host_power_watts") + len(2, "The host's power.") +
                           len(3, "W") + len(5, len(1, host_gauge_point));

  // Histogram{data_points = 1, aggregation_temporality = 2}. HistogramDataPoint{start = 2,
  // time = 3, count = 4 (fixed64), sum = 5 (double), bucket_counts = 6 (packed fixed64, per
  // bucket: 3, 5-3, 6-5), explicit_bounds = 7 (packed double)}.
  std::string counts = le64(3) + le64(2) + le64(1);
  std::string bounds;
  for (double b : {0.001, 0.01}) bounds += dbl(0, b).substr(1);  // the 8 bytes, no key
  std::string hist_point = fixed64(2, kStartNs) + fixed64(3, kTickNs) + fixed64(4, 6) +
                           dbl(5, 0.5) + len(6, counts) + len(7, bounds);
  std::string hist = len(1, "wattprobe_agent_tick_duration_seconds") +
                     len(2, "Time one tick took.") + len(3, "s") +
                     len(9, len(1, hist_point) + key(2, 0) + varint(2));

  // The host figure (here psys) is the whole host: hw.host.energy is absent (no energy family in
  // this tick), hw.host.power is a Gauge with hw.id.
  std::string host_power_point = fixed64(3, kTickNs) + dbl(4, 42.0) + len(7, kv("hw.id", "host"));
  std::string host_power = len(1, "hw.host.power") +
                           len(2, "Instantaneous power consumed by the entire physical host.") +
                           len(3, "W") + len(5, len(1, host_power_point));

  // ScopeMetrics{scope = 1, metrics = 2}; ResourceMetrics{resource = 1, scope_metrics = 2};
  // ExportMetricsServiceRequest{resource_metrics = 1}.
  std::string scope_metrics = len(1, scope) + len(2, energy) + len(2, power) + len(2, host_gauge) +
                              len(2, hist) + len(2, host_power);
  return len(1, len(1, resource) + len(2, scope_metrics));
}

std::string scope_version() {
  for (const auto& [k, v] : otlp_resource(OtlpOptions{}))
    if (k == "service.version") return v;
  return "";
}

TEST(Otlp, TheGoldenRequestFromTheSpecificationDecodesWithOurMessages) {
  std::string golden = golden_request("9.9.9");
  otlp::ExportMetricsServiceRequest req;
  ASSERT_TRUE(req.ParseFromString(golden));
  // Every byte was understood: nothing landed in unknown fields.
  EXPECT_EQ(req.SerializeAsString().size(), golden.size());
  ASSERT_EQ(req.resource_metrics_size(), 1);
  const auto& rm = req.resource_metrics(0);
  ASSERT_EQ(rm.resource().attributes_size(), 4);
  EXPECT_EQ(rm.resource().attributes(1).key(), "host.id");
  EXPECT_EQ(rm.resource().attributes(1).value().string_value(), kResource[1].second);
  const auto& sm = rm.scope_metrics(0);
  EXPECT_EQ(sm.scope().name(), "wattprobe");
  ASSERT_EQ(sm.metrics_size(), 5);
  const auto& energy = sm.metrics(0);
  ASSERT_TRUE(energy.has_sum());
  EXPECT_EQ(energy.unit(), "J");
  EXPECT_EQ(energy.sum().aggregation_temporality(), otlp::AGGREGATION_TEMPORALITY_CUMULATIVE);
  EXPECT_TRUE(energy.sum().is_monotonic());
  EXPECT_EQ(energy.sum().data_points(0).start_time_unix_nano(), kStartNs);
  EXPECT_EQ(energy.sum().data_points(0).time_unix_nano(), kTickNs);
  EXPECT_EQ(energy.sum().data_points(0).as_double(), 12.5);
  ASSERT_TRUE(sm.metrics(1).has_gauge());
  EXPECT_EQ(sm.metrics(1).gauge().data_points(0).attributes_size(), 2);
  ASSERT_TRUE(sm.metrics(3).has_histogram());
  const auto& hp = sm.metrics(3).histogram().data_points(0);
  EXPECT_EQ(hp.count(), 6u);
  EXPECT_EQ(std::vector<uint64_t>(hp.bucket_counts().begin(), hp.bucket_counts().end()),
            (std::vector<uint64_t>{3, 2, 1}));
  EXPECT_EQ(hp.explicit_bounds_size(), 2);
  EXPECT_EQ(sm.metrics(4).name(), "hw.host.power");
}

TEST(Otlp, TheEncodersOutputForAKnownTickIsTheGoldenRequest) {
  const std::string version = scope_version();
  ASSERT_FALSE(version.empty());
  uint32_t points = 0;
  uint64_t invalid = 0;
  std::string encoded =
      encode_otlp_tick(known_tick(), known_starts(), kResource, &points, &invalid);
  std::string golden = golden_request(version);
  EXPECT_EQ(points, 5u);
  EXPECT_EQ(invalid, 0u);
  ASSERT_EQ(encoded.size(), golden.size());
  for (std::size_t i = 0; i < golden.size(); ++i)
    ASSERT_EQ(encoded[i], golden[i]) << "first difference at byte " << i;
}

/// The hw.* points of one encoded tick, by name, each with its hw.id and value.
std::multimap<std::string, std::pair<std::string, double>> hardware_points(const Snapshot& tick) {
  uint32_t points = 0;
  uint64_t invalid = 0;
  otlp::ExportMetricsServiceRequest req;
  EXPECT_TRUE(
      req.ParseFromString(encode_otlp_tick(tick, SeriesStarts{}, kResource, &points, &invalid)));
  std::multimap<std::string, std::pair<std::string, double>> out;
  for (const auto& m : req.resource_metrics(0).scope_metrics(0).metrics()) {
    if (!m.name().starts_with("hw.")) continue;
    const auto& data = m.has_sum() ? m.sum().data_points() : m.gauge().data_points();
    for (const auto& p : data) {
      std::string id;
      for (const auto& a : p.attributes())
        if (a.key() == "hw.id") id = a.value().string_value();
      out.emplace(m.name(), std::pair{id, p.as_double()});
    }
  }
  return out;
}

Snapshot node_tick(const std::vector<std::pair<std::string, double>>& domains,
                   const std::string& basis, double host_watts, double host_joules,
                   bool measured = true) {
  Snapshot s;
  s.timestamp_ms = kTickMs;
  Family energy{"wattprobe_node_energy_joules_total", "", MetricType::counter};
  Family power{"wattprobe_node_power_watts", "", MetricType::gauge};
  for (const auto& [domain, watts] : domains) {
    const std::string source = domain == "platform" ? "redfish" : "rapl_powercap";
    energy.series.push_back({{{"source", source}, {"domain", domain}}, watts * 60});
    power.series.push_back({{{"source", source}, {"domain", domain}}, watts});
  }
  s.families = {energy, power};
  s.families.push_back(
      {"wattprobe_node_host_energy_joules_total", "", MetricType::counter, {{{}, host_joules}}});
  s.families.push_back(
      {"wattprobe_node_host_power_watts",
       "",
       MetricType::gauge,
       {{{{"basis", basis}, {"measured", measured ? "true" : "false"}}, host_watts}}});
  return s;
}

TEST(Otlp, HwHostIsTheAgentsHostFigureOnceNotEachWholeHostDomain) {
  // A BMC beside psys: one host, the wall's E_host (here the components', where the wall read
  // below them), not psys and the raw wall both.
  auto hw = hardware_points(node_tick(
      {{"package", 50}, {"dram", 10}, {"psys", 70}, {"platform", 55}}, "platform", 60, 9000));
  ASSERT_EQ(hw.count("hw.host.power"), 1u);
  ASSERT_EQ(hw.count("hw.host.energy"), 1u);
  EXPECT_EQ(hw.find("hw.host.power")->second, (std::pair<std::string, double>{"host", 60}));
  EXPECT_EQ(hw.find("hw.host.energy")->second, (std::pair<std::string, double>{"host", 9000}));
  EXPECT_EQ(hw.count("hw.power"), 2u) << "package and dram are components; psys is not";

  // Without a whole-host meter, E_host is package + dram: the host is still sent, as that.
  hw = hardware_points(node_tick({{"package", 50}, {"dram", 10}}, "components", 60, 3600));
  ASSERT_EQ(hw.count("hw.host.power"), 1u);
  EXPECT_EQ(hw.find("hw.host.power")->second.second, 60);
  EXPECT_EQ(hw.find("hw.host.energy")->second.second, 3600);

  // An estimate is no hardware reading.
  hw = hardware_points(node_tick({{"package", 50}}, "components", 50, 3000, /*measured=*/false));
  EXPECT_EQ(hw.count("hw.host.power") + hw.count("hw.host.energy"), 0u);
}

// ---- A strict decoding receiver ---------------------------------------------------------------

std::string gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out(std::max<std::size_t>(in.size() * 8, 1024), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc;
  do {
    if (z.total_out >= out.size()) out.resize(out.size() * 2);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + z.total_out);
    z.avail_out = static_cast<uInt>(out.size() - z.total_out);
    rc = inflate(&z, Z_NO_FLUSH);
  } while (rc == Z_OK);
  EXPECT_EQ(rc, Z_STREAM_END) << "not a whole gzip stream";
  out.resize(z.total_out);
  inflateEnd(&z);
  return out;
}

struct Point {
  std::string metric;
  std::map<std::string, std::string> attributes;
  uint64_t start_ns = 0;
  uint64_t time_ns = 0;
  double value = 0;
};

// Decodes one request as a strict receiver would, failing the test on anything a Collector
// would refuse or misread: a body that is not exactly one gzip'd request, unknown fields, a
// Sum that is not monotonic cumulative, a cumulative point without a start time or ending before
// it, a gauge with one, a histogram whose buckets do not add up, a duplicate attribute, the
// resource without its attributes.
std::vector<Point> decode_strictly(const FakeHttpReceiver::Request& r, bool gzipped = true) {
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/metrics");
  EXPECT_EQ(r.headers.at("content-type"), "application/x-protobuf");
  EXPECT_EQ(r.headers.count("content-encoding") ? r.headers.at("content-encoding") : "",
            gzipped ? "gzip" : "");
  std::string raw = gzipped ? gunzip(r.body) : r.body;
  otlp::ExportMetricsServiceRequest req;
  EXPECT_TRUE(req.ParseFromString(raw));
  // Strict: the same bytes back means no unknown field and nothing non-canonical.
  std::string again;
  {
    google::protobuf::io::StringOutputStream stream(&again);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    req.SerializeToCodedStream(&coded);
  }
  EXPECT_EQ(again, raw) << "the request holds fields the specification's messages do not";
  std::vector<Point> out;
  for (const auto& rm : req.resource_metrics()) {
    std::map<std::string, std::string> res;
    for (const auto& a : rm.resource().attributes()) {
      EXPECT_TRUE(a.value().has_string_value()) << a.key();
      EXPECT_TRUE(res.emplace(a.key(), a.value().string_value()).second) << "twice: " << a.key();
    }
    EXPECT_FALSE(res["service.name"].empty());
    EXPECT_FALSE(res["service.version"].empty());
    EXPECT_FALSE(res["host.name"].empty());
    for (const auto& sm : rm.scope_metrics()) {
      EXPECT_EQ(sm.scope().name(), "wattprobe");
      for (const auto& m : sm.metrics()) {
        EXPECT_FALSE(m.name().empty());
        EXPECT_TRUE(m.unit() == "J" || m.unit() == "W" || m.unit() == "g" || m.unit() == "s" ||
                    m.unit() == "1" || m.unit() == "By" || m.unit() == "g/kW.h")
            << m.name() << " unit " << m.unit();
        auto attrs = [&](const auto& point) {
          std::map<std::string, std::string> a;
          for (const auto& kv : point.attributes()) {
            EXPECT_FALSE(kv.value().string_value().empty()) << m.name() << " " << kv.key();
            EXPECT_TRUE(a.emplace(kv.key(), kv.value().string_value()).second)
                << m.name() << " twice: " << kv.key();
          }
          return a;
        };
        if (m.has_sum()) {
          EXPECT_TRUE(m.name().ends_with("_total") || m.name() == "hw.energy" ||
                      m.name() == "hw.host.energy")
              << m.name();
          EXPECT_EQ(m.sum().aggregation_temporality(), otlp::AGGREGATION_TEMPORALITY_CUMULATIVE)
              << m.name();
          EXPECT_TRUE(m.sum().is_monotonic()) << m.name();
          for (const auto& p : m.sum().data_points()) {
            EXPECT_GT(p.start_time_unix_nano(), 0u) << m.name();
            EXPECT_LE(p.start_time_unix_nano(), p.time_unix_nano()) << m.name();
            EXPECT_EQ(p.value_case(), otlp::NumberDataPoint::kAsDouble);
            out.push_back(
                {m.name(), attrs(p), p.start_time_unix_nano(), p.time_unix_nano(), p.as_double()});
          }
        } else if (m.has_gauge()) {
          EXPECT_FALSE(m.name().ends_with("_total")) << m.name();
          for (const auto& p : m.gauge().data_points()) {
            EXPECT_EQ(p.start_time_unix_nano(), 0u) << m.name();
            EXPECT_GT(p.time_unix_nano(), 0u) << m.name();
            out.push_back({m.name(), attrs(p), 0, p.time_unix_nano(), p.as_double()});
          }
        } else {
          EXPECT_TRUE(m.has_histogram()) << m.name() << " is no Sum, Gauge or Histogram";
          EXPECT_EQ(m.histogram().aggregation_temporality(),
                    otlp::AGGREGATION_TEMPORALITY_CUMULATIVE);
          for (const auto& p : m.histogram().data_points()) {
            EXPECT_EQ(p.bucket_counts_size(), p.explicit_bounds_size() + 1) << m.name();
            uint64_t total = 0;
            for (uint64_t c : p.bucket_counts()) total += c;
            EXPECT_EQ(total, p.count()) << m.name();
            EXPECT_GT(p.start_time_unix_nano(), 0u);
            EXPECT_LE(p.start_time_unix_nano(), p.time_unix_nano());
            out.push_back({m.name(), attrs(p), p.start_time_unix_nano(), p.time_unix_nano(),
                           static_cast<double>(p.count())});
          }
        }
      }
    }
  }
  return out;
}

std::vector<Point> decode_all(const std::vector<FakeHttpReceiver::Request>& requests,
                              bool gzipped = true) {
  std::vector<Point> out;
  for (const auto& r : requests) {
    auto points = decode_strictly(r, gzipped);
    out.insert(out.end(), points.begin(), points.end());
  }
  return out;
}

constexpr int kWorkloads = 3;
constexpr uint32_t kPointsPerTick = kWorkloads + 1 + 1 + 1;  // energy, power, histogram, hw.power

// One tick: per-workload joules counters, a package power gauge, the tick histogram. Values are
// a function of the tick, so the receiver can tell every point arrived exactly once.
Snapshot tick(int i, int64_t timestamp_ms) {
  Snapshot s;
  s.timestamp_ms = timestamp_ms;
  Family energy{"wattprobe_workload_energy_joules_total", "Energy.", MetricType::counter, {}};
  for (int w = 0; w < kWorkloads; ++w) {
    energy.series.push_back(Series{{{"workload", "unit" + std::to_string(w) + ".service"},
                                    {"kind", "systemd"},
                                    {"pod", ""},
                                    {"domain", "package"}},
                                   i * 10.0 + w});
  }
  s.families.push_back(energy);
  s.families.push_back(Family{
      "wattprobe_node_power_watts",
      "Power.",
      MetricType::gauge,
      {Series{{{"source", "rapl_powercap"}, {"domain", "package"}, {"socket", "0"}}, 5.0 + i}}});
  Family h{"wattprobe_agent_tick_duration_seconds", "Tick.", MetricType::histogram};
  h.histogram =
      Histogram{{0.001, 0.01}, {uint64_t(i), uint64_t(i + 1)}, uint64_t(i + 1), 0.001 * i};
  s.families.push_back(std::move(h));
  return s;
}

OtlpOptions fast_options(const std::string& endpoint, const fs::path& state_dir) {
  OtlpOptions o;
  o.endpoint = endpoint;
  o.host_name = "node-1";
  o.host_id = "0123456789abcdef0123456789abcdef";
  o.state_dir = state_dir;
  o.batch_interval = 20ms;
  o.connect_timeout = 500ms;
  o.request_timeout = 2000ms;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.stop_flush_timeout = 500ms;
  return o;
}

std::string base(const FakeHttpReceiver& r) {
  return "http://127.0.0.1:" + std::to_string(r.port());
}
std::string nobody() { return "http://127.0.0.1:" + std::to_string(testing::free_local_port()); }

std::unique_ptr<OtlpExporter> started(const OtlpOptions& o) {
  auto e = std::make_unique<OtlpExporter>(o);
  auto r = e->start();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return e;
}

// Feeds ticks as the pipeline does: the start times observe each snapshot, then it is queued.
struct Feeder {
  SeriesStarts starts;
  int64_t agent_start_ms = 0;
  int64_t last_ms = 0;
  void feed(OtlpExporter& e, const Snapshot& s) {
    starts.observe(s, last_ms > 0 ? last_ms : agent_start_ms);
    e.enqueue(s, starts);
    last_ms = s.timestamp_ms;
  }
};

// Every point of one series ("workload" attribute or the metric alone) → time stamps in order.
std::map<std::string, std::vector<uint64_t>> times_by_series(const std::vector<Point>& points) {
  std::map<std::string, std::vector<uint64_t>> out;
  for (const auto& p : points) {
    auto w = p.attributes.find("workload");
    out[p.metric + (w == p.attributes.end() ? "" : "{" + w->second + "}")].push_back(p.time_ns);
  }
  return out;
}

TEST(Otlp, AReceiverDecodesTypesTemporalityAttributesAndStartTimes) {
  testing::TempTree tmp;
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(base(good) + "/", tmp.path("state"));  // a trailing slash is fine
  o.resource_attributes = {{"deployment.environment", "test"}, {"service.name", "energy"}};
  auto e = started(o);
  Feeder f;
  const int64_t t0 = now_ms() - 10'000;
  f.agent_start_ms = t0 - 1000;
  for (int i = 0; i < 3; ++i) f.feed(*e, tick(i, t0 + i * 1000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto reqs = good.requests();
  ASSERT_FALSE(reqs.empty());
  std::string raw = gunzip(reqs[0].body);
  otlp::ExportMetricsServiceRequest req;
  ASSERT_TRUE(req.ParseFromString(raw));
  std::map<std::string, std::string> res;
  for (const auto& a : req.resource_metrics(0).resource().attributes())
    res[a.key()] = a.value().string_value();
  EXPECT_EQ(res["host.name"], "node-1");
  EXPECT_EQ(res["host.id"], "0123456789abcdef0123456789abcdef");
  EXPECT_EQ(res["service.name"], "energy");  // configured over the default
  EXPECT_EQ(res["deployment.environment"], "test");

  auto points = decode_all(reqs, true);  // checks types and temporality, as the comment says
  ASSERT_EQ(points.size(), 3 * kPointsPerTick);
  for (const auto& p : points) {
    if (p.metric == "wattprobe_workload_energy_joules_total") {
      // Labels become attributes; the empty pod is none.
      EXPECT_EQ(p.attributes.size(), 3u);
      EXPECT_EQ(p.attributes.count("pod"), 0u);
      EXPECT_EQ(p.attributes.at("kind"), "systemd");
      // Every cumulative point of the run starts where the agent started.
      EXPECT_EQ(p.start_ns, uint64_t(f.agent_start_ms) * 1'000'000);
    }
    if (p.metric == "hw.power") {
      EXPECT_EQ(p.attributes.at("hw.type"), "cpu");
      EXPECT_EQ(p.attributes.at("hw.id"), "rapl_powercap_package_0");
    }
  }
  EXPECT_EQ(e->counters().samples_sent, 3 * kPointsPerTick);
}

TEST(Otlp, APermanentRejectionDropsTheBatchOnceAndCountsIt) {
  testing::TempTree tmp;
  std::atomic<int> n{0};
  FakeHttpReceiver recv([&](const auto&) {
    return FakeHttpReceiver::answer(n++ == 0 ? 400 : 200, {}, "bad metric");
  });
  auto e = started(fast_options(base(recv), tmp.path("state")));
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 2000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  f.feed(*e, tick(1, now_ms() - 1000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto c = e->counters();
  EXPECT_EQ(c.failed_http_4xx, 1u);
  EXPECT_EQ(c.dropped_rejected, kPointsPerTick);
  EXPECT_EQ(c.samples_sent, kPointsPerTick);
  EXPECT_EQ(c.requests_retried, 0u);
  EXPECT_EQ(recv.requests().size(), 2u);  // the refused one was not offered again
}

TEST(Otlp, ServerErrorsTooManyRequestsAndConnectionErrorsAreRetriedUntilDelivered) {
  testing::TempTree tmp;
  std::atomic<int> n{0};
  FakeHttpReceiver recv([&](const auto&) {
    switch (n++) {
      case 0:
        return FakeHttpReceiver::answer(500);
      case 1:
        return FakeHttpReceiver::answer(502);
      case 2:
        return FakeHttpReceiver::answer(429);
      default:
        return FakeHttpReceiver::answer(200);
    }
  });
  auto e = started(fast_options(base(recv), tmp.path("state")));
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 1000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto c = e->counters();
  EXPECT_EQ(c.failed_http_5xx, 2u);
  EXPECT_EQ(c.failed_http_429, 1u);
  EXPECT_EQ(c.requests_retried, 3u);
  EXPECT_EQ(c.samples_sent, kPointsPerTick);
  auto reqs = recv.requests();
  ASSERT_EQ(reqs.size(), 4u);
  // Each retry carries exactly the refused points.
  for (const auto& r : reqs) EXPECT_EQ(decode_strictly(r).size(), kPointsPerTick);
}

TEST(Otlp, AServiceUnavailableWithRetryAfterWaitsForItNotForTheBackoff) {
  testing::TempTree tmp;
  std::atomic<int> n{0};
  FakeHttpReceiver recv([&](const auto&) {
    return n++ == 0 ? FakeHttpReceiver::answer(503, {{"Retry-After", "0"}})
                    : FakeHttpReceiver::answer(200);
  });
  auto o = fast_options(base(recv), tmp.path("state"));
  // A backoff far longer than the test: only the receiver's Retry-After: 0 can bring the retry.
  o.backoff_min = std::chrono::minutes(10);
  o.backoff_max = std::chrono::minutes(10);
  auto e = started(o);
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 1000));
  ASSERT_TRUE(e->wait_until_drained(20s));
  EXPECT_EQ(e->counters().failed_http_5xx, 1u);
  EXPECT_EQ(e->counters().samples_sent, kPointsPerTick);
}

TEST(Otlp, APartialSuccessIsCountedAndTheBatchLeavesTheQueue) {
  testing::TempTree tmp;
  otlp::ExportMetricsServiceResponse answer;
  answer.mutable_partial_success()->set_rejected_data_points(2);
  answer.mutable_partial_success()->set_error_message("2 points out of order");
  const std::string body = answer.SerializeAsString();
  FakeHttpReceiver recv([&](const auto&) {
    return FakeHttpReceiver::answer(200, {{"Content-Type", "application/x-protobuf"}}, body);
  });
  auto e = started(fast_options(base(recv), tmp.path("state")));
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 1000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto c = e->counters();
  EXPECT_EQ(c.dropped_partial, 2u);
  EXPECT_EQ(c.samples_sent, kPointsPerTick - 2);
  EXPECT_EQ(recv.requests().size(), 1u);
  std::vector<Family> families;
  e->append_families(families);
  bool found = false;
  for (const auto& fam : families) {
    if (fam.name != "wattprobe_agent_otlp_samples_dropped_total") continue;
    for (const auto& s : fam.series)
      if (s.labels[0].second == "partial") {
        EXPECT_EQ(s.value, 2.0);
        found = true;
      }
  }
  EXPECT_TRUE(found);
}

TEST(Otlp, NoPointIsLostThroughAnOutageAndARestart) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  const int64_t t0 = now_ms() - 60'000;
  Feeder f;
  f.agent_start_ms = t0 - 1000;
  {
    auto e = started(fast_options(nobody(), state));  // connection refused: retried, kept
    for (int i = 0; i < 5; ++i) f.feed(*e, tick(i, t0 + i * 1000));
    ASSERT_TRUE(eventually([&] { return e->counters().failed_connect >= 1; }, 5s));
    EXPECT_EQ(e->counters().queue_samples, 5 * kPointsPerTick);
  }
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto e = started(fast_options(base(good), state));
  f.feed(*e, tick(5, t0 + 5000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto got = times_by_series(decode_all(good.requests()));
  ASSERT_EQ(got.size(), kPointsPerTick);
  for (const auto& [series, times] : got) {
    ASSERT_EQ(times.size(), 6u) << series;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(times[i], uint64_t(t0 + i * 1000) * 1'000'000) << series;
  }
}

TEST(Otlp, TicksQueuedBeforeAKillNineAreSentByTheNextStart) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  const int64_t t0 = now_ms() - 60'000;
  constexpr int kTicks = 8;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The agent: queues its ticks against a receiver that is down, says so, and is killed
    // while its sender is retrying.
    ::close(ready[0]);
    OtlpExporter e(fast_options(nobody(), state));
    if (!e.start().ok()) ::_exit(3);
    Feeder f;
    f.agent_start_ms = t0 - 1000;
    for (int i = 0; i < kTicks; ++i) f.feed(e, tick(i, t0 + i * 1000));
    char c = 'q';
    if (::write(ready[1], &c, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto e = started(fast_options(base(good), state));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto got = times_by_series(decode_all(good.requests()));
  ASSERT_EQ(got.size(), kPointsPerTick);
  for (const auto& [series, times] : got) {
    ASSERT_EQ(times.size(), std::size_t{kTicks}) << series;
    for (int i = 0; i < kTicks; ++i)
      EXPECT_EQ(times[i], uint64_t(t0 + i * 1000) * 1'000'000) << series;
  }
}

TEST(Otlp, PastTheQueueBoundTheOldestTicksAreDroppedAndCounted) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  const int64_t t0 = now_ms() - 900'000;
  constexpr int kTicks = 600;
  std::size_t queued = 0;
  Feeder f;
  f.agent_start_ms = t0 - 1000;
  {
    auto o = fast_options(nobody(), state);
    o.queue_max_bytes = 64 << 10;
    o.queue_fsync_each_append = false;
    auto e = started(o);
    for (int i = 0; i < kTicks; ++i) f.feed(*e, tick(i, t0 + i * 1000));
    auto c = e->counters();
    EXPECT_LE(c.queue_bytes, std::size_t{64} << 10);
    EXPECT_GT(c.dropped_queue_full, 0u);
    EXPECT_EQ(c.dropped_queue_full + c.queue_samples, std::size_t{kTicks} * kPointsPerTick);
    queued = c.queue_samples;
  }
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto e = started(fast_options(base(good), state));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto points = decode_all(good.requests());
  EXPECT_EQ(points.size(), queued);
  for (const auto& [series, times] : times_by_series(points)) {
    EXPECT_EQ(times.back(), uint64_t(t0 + (kTicks - 1) * 1000) * 1'000'000) << series;
    for (std::size_t i = 1; i < times.size(); ++i)
      EXPECT_EQ(times[i] - times[i - 1], 1'000'000'000u) << series;
  }
}

TEST(Otlp, HeadersAndASecretHeaderFileReadBeforeEveryRequest) {
  testing::TempTree tmp;
  fs::path secret = tmp.path("key");
  { std::ofstream(secret) << "first-key\n"; }
  FakeHttpReceiver recv([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(base(recv), tmp.path("state"));
  o.headers = {{"X-Scope-OrgID", "tenant-1"}};
  o.header_files = {{"Api-Key", secret.string()}};
  o.gzip = false;
  auto e = started(o);
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 2000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  {
    std::ofstream(secret) << "second-key\n";  // rotated: the next request carries it
  }
  f.feed(*e, tick(1, now_ms() - 1000));
  ASSERT_TRUE(e->wait_until_drained(10s));
  auto reqs = recv.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].headers.at("x-scope-orgid"), "tenant-1");
  EXPECT_EQ(reqs[0].headers.at("api-key"), "first-key");
  EXPECT_EQ(reqs[1].headers.at("api-key"), "second-key");
  EXPECT_EQ(decode_all(reqs, /*gzipped=*/false).size(), 2 * kPointsPerTick);
}

TEST(Otlp, ASecretFileWithALineBreakIsRefusedAndRetriedNotSent) {
  testing::TempTree tmp;
  fs::path secret = tmp.path("key");
  { std::ofstream(secret) << "a\r\nInjected: yes\n"; }
  FakeHttpReceiver recv([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(base(recv), tmp.path("state"));
  o.header_files = {{"Api-Key", secret.string()}};
  auto e = started(o);
  Feeder f;
  f.agent_start_ms = now_ms() - 5000;
  f.feed(*e, tick(0, now_ms() - 1000));
  ASSERT_TRUE(eventually([&] { return e->counters().failed_credentials >= 2; }, 5s));
  EXPECT_TRUE(recv.requests().empty());
  EXPECT_EQ(e->counters().queue_samples, kPointsPerTick);
  { std::ofstream(secret) << "good\n"; }
  ASSERT_TRUE(e->wait_until_drained(10s));
  EXPECT_EQ(recv.requests().at(0).headers.at("api-key"), "good");
}

TEST(Otlp, ValidateNamesTheWrongFieldAndItsValue) {
  testing::TempTree tmp;
  auto msg = [&](auto change) {
    OtlpOptions o = fast_options("http://collector:4318", tmp.path("state"));
    change(o);
    auto r = validate(o);
    return r.ok() ? std::string("ok") : r.error().message();
  };
  EXPECT_EQ(msg([](OtlpOptions&) {}), "ok");
  EXPECT_NE(msg([](OtlpOptions& o) { o.endpoint = "ftp://x"; }).find("otlp-endpoint"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) { o.endpoint = "http://x/?a=b"; }).find("query"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) {
              o.headers = {{"Content-Encoding", "br"}};
            }).find("Content-Encoding"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) {
              o.headers = {{"X-A", "a\nb"}};
            }).find("CR, LF"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) {
              o.headers = {{"Api-Key", "a"}};
              o.header_files = {{"api-key", "/f"}};
            }).find("twice"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) {
              o.resource_attributes = {{"a", "1"}, {"a", "2"}};
            }).find("otlp-resource-attribute"),
            std::string::npos);
  EXPECT_NE(msg([](OtlpOptions& o) {
              o.backoff_min = 2s;
              o.backoff_max = 1s;
            }).find("otlp-backoff-max"),
            std::string::npos);
}

TEST(Otlp, UnitsFollowThePrometheusNames) {
  EXPECT_EQ(otlp_unit("wattprobe_node_energy_joules_total"), "J");
  EXPECT_EQ(otlp_unit("wattprobe_node_power_watts"), "W");
  EXPECT_EQ(otlp_unit("wattprobe_workload_operational_co2e_grams_total"), "g");
  EXPECT_EQ(otlp_unit("wattprobe_grid_carbon_intensity_grams_per_kwh"), "g/kW.h");
  EXPECT_EQ(otlp_unit("wattprobe_workload_cpu_seconds_total"), "s");
  EXPECT_EQ(otlp_unit("wattprobe_agent_accounting_mode"), "1");
}

// The same ticks as remote-write's figure test, through both protocols, so the figures compare.
TEST(Otlp, MeasuresBytesPerSampleOnTheWireBesideRemoteWrite) {
  testing::TempTree tmp;
  auto realistic = [](int i, int64_t ts) {
    Snapshot s;
    s.timestamp_ms = ts;
    for (const char* name :
         {"wattprobe_workload_energy_joules_total", "wattprobe_workload_power_watts",
          "wattprobe_workload_cpu_seconds_total", "wattprobe_workload_operational_co2e_grams_total",
          "wattprobe_workload_embodied_co2e_grams_total"}) {
      Family f{name, "A help text of usual length for this family.", MetricType::counter, {}};
      for (int w = 0; w < 100; ++w)
        f.series.push_back(Series{{{"workload", "svc-" + std::to_string(w) + ".service"},
                                   {"kind", "systemd"},
                                   {"namespace", ""},
                                   {"pod", ""},
                                   {"container", ""},
                                   {"domain", "package"}},
                                  i * 0.731 * (w + 1) + 0.001 * i * i});
      s.families.push_back(std::move(f));
    }
    return s;
  };
  constexpr int kTicks = 30;
  const int64_t t0 = now_ms() - kTicks * 1000;
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  double otlp_wire = 0, otlp_plain = 0, rw_wire = 0;
  for (bool gz : {true, false}) {
    auto o = fast_options(nobody(), tmp.path(gz ? "otlp-gz" : "otlp-plain"));
    o.max_samples_per_request = 2000;
    o.gzip = gz;
    {
      auto e = started(o);
      Feeder f;
      f.agent_start_ms = t0 - 1000;
      for (int i = 0; i < kTicks; ++i) f.feed(*e, realistic(i, t0 + i * 1000));
    }
    o.endpoint = base(good);
    auto e = started(o);
    ASSERT_TRUE(e->wait_until_drained(20s));
    auto c = e->counters();
    ASSERT_EQ(c.samples_sent, std::size_t{kTicks} * 500);
    (gz ? otlp_wire : otlp_plain) = static_cast<double>(c.wire_bytes) / c.samples_sent;
  }
  {
    RemoteWriteOptions o;
    o.url = nobody() + "/api/v1/write";
    o.state_dir = tmp.path("rw");
    o.batch_interval = 20ms;
    o.backoff_min = 20ms;
    o.backoff_max = 200ms;
    o.stop_flush_timeout = 500ms;
    {
      RemoteWrite rw(o);
      ASSERT_TRUE(rw.start().ok());
      for (int i = 0; i < kTicks; ++i) rw.enqueue(realistic(i, t0 + i * 1000));
    }
    o.url = good.url();
    RemoteWrite rw(o);
    ASSERT_TRUE(rw.start().ok());
    ASSERT_TRUE(rw.wait_until_drained(20s));
    rw_wire = static_cast<double>(rw.counters().wire_bytes) / rw.counters().samples_sent;
  }
  std::printf(
      "wire bytes per sample, 2000 samples per request: OTLP gzip %.2f, OTLP uncompressed %.2f, "
      "remote-write snappy %.2f\n",
      otlp_wire, otlp_plain, rw_wire);
  RecordProperty("otlp_gzip_wire_bytes_per_sample", std::to_string(otlp_wire));
  RecordProperty("otlp_plain_wire_bytes_per_sample", std::to_string(otlp_plain));
  RecordProperty("remote_write_wire_bytes_per_sample", std::to_string(rw_wire));
  EXPECT_LT(otlp_wire, otlp_plain);
  EXPECT_LT(otlp_wire, 40.0);
}

}  // namespace
}  // namespace wattprobe
