#include "exporters/remote_write.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <snappy.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "exporters/remote_write.pb.h"
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

constexpr int kWorkloads = 3;
constexpr int kSeriesPerTick = kWorkloads + 1;

// One tick as the agent publishes it: per-workload joules counters and a node power gauge.
// Values are a function of the tick so a query can prove every sample arrived exactly once.
Snapshot tick(int i, int64_t timestamp_ms) {
  Snapshot s;
  s.timestamp_ms = timestamp_ms;
  Family energy{"wattprobe_workload_energy_joules_total", "", MetricType::counter, {}};
  for (int w = 0; w < kWorkloads; ++w) {
    // Label order as the family declares it (not sorted), and an empty pod for a systemd unit.
    energy.series.push_back(Series{{{"workload", "unit" + std::to_string(w) + ".service"},
                                    {"kind", "systemd"},
                                    {"pod", ""},
                                    {"domain", "package"}},
                                   i * 10.0 + w});
  }
  s.families.push_back(energy);
  s.families.push_back(
      Family{"wattprobe_node_power_watts",
             "",
             MetricType::gauge,
             {Series{{{"source", "model"}, {"domain", "package"}, {"socket", "0"}}, 5.0 + i}}});
  return s;
}

RemoteWriteOptions fast_options(const std::string& url, const fs::path& state_dir) {
  RemoteWriteOptions o;
  o.url = url;
  o.state_dir = state_dir;
  o.batch_interval = 20ms;
  o.connect_timeout = 500ms;
  o.request_timeout = 2000ms;
  o.backoff_min = 20ms;
  o.backoff_max = 200ms;
  o.stop_flush_timeout = 500ms;
  return o;
}

std::unique_ptr<RemoteWrite> started(const RemoteWriteOptions& o) {
  auto rw = std::make_unique<RemoteWrite>(o);
  auto r = rw->start();
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message());
  return rw;
}

prometheus::WriteRequest decode(const std::string& body) {
  std::string raw;
  EXPECT_TRUE(snappy::Uncompress(body.data(), body.size(), &raw));
  prometheus::WriteRequest req;
  EXPECT_TRUE(req.ParseFromString(raw));
  return req;
}

std::string label(const prometheus::TimeSeries& ts, const std::string& name) {
  for (const auto& l : ts.labels())
    if (l.name() == name) return l.value();
  return "<absent>";
}

// Every sample a receiver got, per series "name{workload}" → (timestamp, value) in arrival order.
std::map<std::string, std::vector<std::pair<int64_t, double>>> received_samples(
    const std::vector<FakeHttpReceiver::Request>& requests) {
  std::map<std::string, std::vector<std::pair<int64_t, double>>> out;
  for (const auto& r : requests) {
    auto request = decode(r.body);
    for (const auto& ts : request.timeseries()) {
      std::string key = label(ts, "__name__") + "{" + label(ts, "workload") + "}";
      for (const auto& s : ts.samples()) out[key].emplace_back(s.timestamp(), s.value());
    }
  }
  return out;
}

std::size_t sample_count(const std::map<std::string, std::vector<std::pair<int64_t, double>>>& m) {
  std::size_t n = 0;
  for (const auto& [k, v] : m) n += v.size();
  return n;
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

TEST(RemoteWrite, SpeaksRemoteWriteOneWithSortedLabelsAndBasicAuth) {
  testing::TempTree tmp;
  tmp.write("secrets/password", "s3cret\n");
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(204); });
  auto o = fast_options(receiver.url(), tmp.path("state"));
  o.basic_auth_user = "wp";
  o.password_file = tmp.path("secrets/password").string();
  o.headers = {{"X-Scope-OrgID", "tenant-a"}};
  auto rw = started(o);
  int64_t t0 = now_ms();
  for (int i = 0; i < 3; ++i) rw->enqueue(tick(i, t0 + i * 1000));
  ASSERT_TRUE(rw->wait_until_drained(10s));

  auto requests = receiver.requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& r : requests) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/api/v1/write");
    EXPECT_EQ(r.headers.at("content-encoding"), "snappy");
    EXPECT_EQ(r.headers.at("content-type"), "application/x-protobuf");
    EXPECT_EQ(r.headers.at("x-prometheus-remote-write-version"), "0.1.0");
    EXPECT_TRUE(r.headers.at("user-agent").starts_with("wattprobe/"));
    EXPECT_EQ(r.headers.at("authorization"), "Basic d3A6czNjcmV0");  // base64("wp:s3cret")
    EXPECT_EQ(r.headers.at("x-scope-orgid"), "tenant-a");
    auto request = decode(r.body);
    for (const auto& ts : request.timeseries()) {
      ASSERT_GE(ts.labels_size(), 2);
      for (int i = 1; i < ts.labels_size(); ++i)
        EXPECT_LT(ts.labels(i - 1).name(), ts.labels(i).name()) << "sorted and unique";
      for (const auto& l : ts.labels()) EXPECT_FALSE(l.value().empty()) << l.name();
    }
  }
  auto got = received_samples(requests);
  EXPECT_EQ(sample_count(got), 3u * kSeriesPerTick);
  const auto& unit1 = got.at("wattprobe_workload_energy_joules_total{unit1.service}");
  ASSERT_EQ(unit1.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(unit1[i].first, t0 + i * 1000);
    EXPECT_EQ(unit1[i].second, i * 10.0 + 1);
  }
  auto c = rw->counters();
  EXPECT_EQ(c.samples_sent, 3u * kSeriesPerTick);
  EXPECT_EQ(c.requests_retried, 0u);
  EXPECT_EQ(c.queue_samples, 0u);
}

TEST(RemoteWrite, SendsABearerTokenReadFromItsFile) {
  testing::TempTree tmp;
  tmp.write("token", "tok-123\n");
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(receiver.url(), tmp.path("state"));
  o.bearer_token_file = tmp.path("token").string();
  auto rw = started(o);
  rw->enqueue(tick(0, now_ms()));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  ASSERT_FALSE(receiver.requests().empty());
  EXPECT_EQ(receiver.requests()[0].headers.at("authorization"), "Bearer tok-123");
}

TEST(RemoteWrite, BadRequestDropsTheBatchWithoutRetryAndCountsItRejected) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver(
      [](const auto&) { return FakeHttpReceiver::answer(400, {}, "out of order sample"); });
  auto rw = started(fast_options(receiver.url(), tmp.path("state")));
  int64_t t0 = now_ms();
  for (int i = 0; i < 3; ++i) rw->enqueue(tick(i, t0 + i));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  std::this_thread::sleep_for(200ms);  // room for a wrong retry to show up

  auto c = rw->counters();
  EXPECT_EQ(c.dropped_rejected, 3u * kSeriesPerTick);
  EXPECT_EQ(c.requests_retried, 0u);
  EXPECT_EQ(c.samples_sent, 0u);
  EXPECT_EQ(c.failed_http_4xx, receiver.requests().size());
  // Each sample was offered exactly once.
  EXPECT_EQ(sample_count(received_samples(receiver.requests())), 3u * kSeriesPerTick);
}

TEST(RemoteWrite, TooManyRequestsIsRetriedAfterTheReceiversRetryAfter) {
  testing::TempTree tmp;
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  FakeHttpReceiver receiver([&](const auto&) {
    std::lock_guard lock(mu);
    arrivals.push_back(std::chrono::steady_clock::now());
    if (arrivals.size() == 1) return FakeHttpReceiver::answer(429, {{"Retry-After", "1"}});
    return FakeHttpReceiver::answer(200);
  });
  auto o = fast_options(receiver.url(), tmp.path("state"));
  o.backoff_min = 10ms;  // far below Retry-After: the header must win
  auto rw = started(o);
  rw->enqueue(tick(0, now_ms()));
  ASSERT_TRUE(rw->wait_until_drained(10s));

  std::lock_guard lock(mu);
  ASSERT_EQ(arrivals.size(), 2u);
  EXPECT_GE(arrivals[1] - arrivals[0], 950ms);
  auto c = rw->counters();
  EXPECT_EQ(c.failed_http_429, 1u);
  EXPECT_EQ(c.requests_retried, 1u);
  EXPECT_EQ(c.samples_sent, 1u * kSeriesPerTick);
  EXPECT_EQ(c.dropped_rejected, 0u);
}

TEST(RemoteWrite, ServerErrorsAreRetriedWithGrowingBackoffThenDeliveredOnce) {
  testing::TempTree tmp;
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  FakeHttpReceiver receiver([&](const auto&) {
    std::lock_guard lock(mu);
    arrivals.push_back(std::chrono::steady_clock::now());
    return FakeHttpReceiver::answer(arrivals.size() <= 3 ? 503 : 200);
  });
  auto o = fast_options(receiver.url(), tmp.path("state"));
  o.backoff_min = 100ms;
  o.backoff_max = 1000ms;
  auto rw = started(o);
  rw->enqueue(tick(0, now_ms()));
  ASSERT_TRUE(rw->wait_until_drained(10s));

  std::lock_guard lock(mu);
  ASSERT_EQ(arrivals.size(), 4u);
  EXPECT_GE(arrivals[1] - arrivals[0], 95ms);
  EXPECT_GE(arrivals[2] - arrivals[1], 195ms);
  EXPECT_GE(arrivals[3] - arrivals[2], 395ms);
  auto c = rw->counters();
  EXPECT_EQ(c.failed_http_5xx, 3u);
  EXPECT_EQ(c.requests_retried, 3u);
  EXPECT_EQ(c.samples_sent, 1u * kSeriesPerTick);
  EXPECT_EQ(sample_count(received_samples({receiver.requests().back()})), 1u * kSeriesPerTick);
}

TEST(RemoteWrite, AHangingReceiverTimesOutKeepsTheSamplesAndDoesNotHoldUpStop) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  int64_t t0 = now_ms();
  {
    FakeHttpReceiver hanging([](const auto&) { return FakeHttpReceiver::hang(); });
    auto o = fast_options(hanging.url(), state);
    o.request_timeout = 300ms;
    o.stop_flush_timeout = 300ms;
    auto rw = started(o);
    rw->enqueue(tick(0, t0));
    ASSERT_TRUE(eventually([&] { return rw->counters().requests_retried >= 2; }, 5s));
    auto c = rw->counters();
    EXPECT_GE(c.failed_timeout, 2u);
    EXPECT_EQ(c.samples_sent, 0u);
    EXPECT_EQ(c.queue_samples, 1u * kSeriesPerTick);

    auto before = std::chrono::steady_clock::now();
    rw->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - before, 1500ms);
  }
  // What the hanging receiver never acknowledged is delivered by the next run.
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(good.url(), state));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  auto got = received_samples(good.requests());
  EXPECT_EQ(sample_count(got), 1u * kSeriesPerTick);
  EXPECT_EQ(got.at("wattprobe_node_power_watts{<absent>}")[0].first, t0);
}

TEST(RemoteWrite, WhatStopCouldNotSendIsDeliveredByTheNextStartInTimeOrder) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  int64_t t0 = now_ms();
  {
    // Nobody listens on this port: connection refused, counted, retried, kept.
    auto rw = started(fast_options(
        "http://127.0.0.1:" + std::to_string(testing::free_local_port()) + "/api/v1/write", state));
    for (int i = 0; i < 5; ++i) rw->enqueue(tick(i, t0 + i * 1000));
    ASSERT_TRUE(eventually([&] { return rw->counters().failed_connect >= 1; }, 5s));
    EXPECT_EQ(rw->counters().queue_samples, 5u * kSeriesPerTick);
  }
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(good.url(), state));
  rw->enqueue(tick(5, t0 + 5000));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  auto got = received_samples(good.requests());
  EXPECT_EQ(sample_count(got), 6u * kSeriesPerTick);
  for (const auto& [series, samples] : got) {
    ASSERT_EQ(samples.size(), 6u) << series;
    for (int i = 0; i < 6; ++i) EXPECT_EQ(samples[i].first, t0 + i * 1000) << series;
  }
}

TEST(RemoteWrite, PastTheQueueBoundTheOldestTicksAreDroppedAndCounted) {
  testing::TempTree tmp;
  fs::path state = tmp.path("state");
  int64_t t0 = now_ms() - 600 * 1000;
  constexpr int kTicks = 600;
  std::size_t queued = 0;
  {
    auto o = fast_options(
        "http://127.0.0.1:" + std::to_string(testing::free_local_port()) + "/api/v1/write", state);
    o.queue_max_bytes = 64 << 10;
    o.queue_fsync_each_append = false;
    auto rw = started(o);
    for (int i = 0; i < kTicks; ++i) rw->enqueue(tick(i, t0 + i * 1000));
    auto c = rw->counters();
    EXPECT_LE(c.queue_bytes, std::size_t{64} << 10);
    EXPECT_GT(c.dropped_queue_full, 0u);
    EXPECT_EQ(c.dropped_queue_full + c.queue_samples, std::size_t{kTicks} * kSeriesPerTick);
    queued = c.queue_samples;
  }
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(good.url(), state));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  auto got = received_samples(good.requests());
  EXPECT_EQ(sample_count(got), queued);
  // The newest ticks survive, contiguous up to the last one, in time order.
  for (const auto& [series, samples] : got) {
    ASSERT_FALSE(samples.empty());
    EXPECT_EQ(samples.back().first, t0 + (kTicks - 1) * 1000) << series;
    for (std::size_t i = 1; i < samples.size(); ++i)
      EXPECT_EQ(samples[i].first - samples[i - 1].first, 1000) << series;
  }
}

TEST(RemoteWrite, SeriesThatAReceiverWouldRejectAreLeftOutAndCounted) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(receiver.url(), tmp.path("state")));
  Snapshot s = tick(0, now_ms());
  s.families.push_back(Family{"bad-name", "", MetricType::gauge, {Series{{}, 1}}});
  s.families.push_back(Family{"wattprobe_x",
                              "",
                              MetricType::gauge,
                              {Series{{{"a", "1"}, {"a", "2"}}, 1}, Series{{{"1bad", "v"}}, 1}}});
  rw->enqueue(s);
  ASSERT_TRUE(rw->wait_until_drained(10s));
  auto c = rw->counters();
  EXPECT_EQ(c.dropped_invalid, 3u);
  EXPECT_EQ(c.samples_sent, 1u * kSeriesPerTick);
}

TEST(RemoteWrite, AHistogramIsSentAsTheClassicSeriesAScrapeWouldMake) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(receiver.url(), tmp.path("state")));
  Snapshot s;
  s.timestamp_ms = now_ms();
  Family f{"wattprobe_agent_tick_duration_seconds", "", MetricType::histogram, {}};
  f.histogram = Histogram{{0.0005, 0.01, 1}, {2, 5, 7}, 9, 3.25};
  s.families.push_back(f);
  rw->enqueue(s);
  ASSERT_TRUE(rw->wait_until_drained(10s));

  std::map<std::string, double> got;
  for (const auto& r : receiver.requests()) {
    auto request = decode(r.body);
    for (const auto& ts : request.timeseries()) {
      ASSERT_EQ(ts.samples_size(), 1);
      EXPECT_EQ(ts.samples(0).timestamp(), s.timestamp_ms);
      std::string le = label(ts, "le");
      got[label(ts, "__name__") + (le == "<absent>" ? "" : "{" + le + "}")] = ts.samples(0).value();
    }
  }
  EXPECT_EQ(got, (std::map<std::string, double>{
                     {"wattprobe_agent_tick_duration_seconds_bucket{0.0005}", 2},
                     {"wattprobe_agent_tick_duration_seconds_bucket{0.01}", 5},
                     {"wattprobe_agent_tick_duration_seconds_bucket{1}", 7},
                     {"wattprobe_agent_tick_duration_seconds_bucket{+Inf}", 9},
                     {"wattprobe_agent_tick_duration_seconds_sum", 3.25},
                     {"wattprobe_agent_tick_duration_seconds_count", 9}}));
  EXPECT_EQ(rw->counters().dropped_invalid, 0u);
}

TEST(RemoteWrite, AddsTheHostsLabelsWhereASeriesHasNoneOfThatName) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(receiver.url(), tmp.path("state"));
  o.labels = {{"instance", "host-a"}, {"kind", "from-host"}, {"region", ""}};
  auto rw = started(o);
  rw->enqueue(tick(0, now_ms()));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  std::size_t seen = 0;
  for (const auto& r : receiver.requests()) {
    auto request = decode(r.body);
    for (const auto& ts : request.timeseries()) {
      ++seen;
      EXPECT_EQ(label(ts, "instance"), "host-a");
      EXPECT_EQ(label(ts, "region"), "<absent>") << "an empty value adds nothing";
      // The series' own kind wins; the node gauge has none, so it takes the host's.
      bool workload = label(ts, "__name__") == "wattprobe_workload_energy_joules_total";
      EXPECT_EQ(label(ts, "kind"), workload ? "systemd" : "from-host");
      for (int i = 1; i < ts.labels_size(); ++i)
        EXPECT_LT(ts.labels(i - 1).name(), ts.labels(i).name()) << "sorted and unique";
    }
  }
  EXPECT_EQ(seen, std::size_t{kSeriesPerTick});
}

// tick(i, ts) without workload unit2.service: what the agent publishes once it has expired.
Snapshot tick_without_unit2(int i, int64_t timestamp_ms) {
  Snapshot s = tick(i, timestamp_ms);
  s.families[0].series.pop_back();
  return s;
}

bool is_stale_marker(double v) {
  return std::bit_cast<uint64_t>(v) == 0x7ff0000000000002;  // Prometheus value.StaleNaN
}

TEST(RemoteWrite, ASeriesThatGoesAwayGetsOneStalenessMarker) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(receiver.url(), tmp.path("state")));
  int64_t t0 = now_ms();
  rw->enqueue(tick(0, t0));
  rw->enqueue(tick_without_unit2(1, t0 + 1000));
  rw->enqueue(tick_without_unit2(2, t0 + 2000));
  rw->enqueue(tick(3, t0 + 3000));  // back again: an ordinary sample, no marker
  ASSERT_TRUE(rw->wait_until_drained(10s));

  auto got = received_samples(receiver.requests());
  const auto& unit2 = got.at("wattprobe_workload_energy_joules_total{unit2.service}");
  ASSERT_EQ(unit2.size(), 3u);
  EXPECT_EQ(unit2[0], std::make_pair(t0, 2.0));
  EXPECT_EQ(unit2[1].first, t0 + 1000);
  EXPECT_TRUE(is_stale_marker(unit2[1].second)) << unit2[1].second;
  EXPECT_EQ(unit2[2], std::make_pair(t0 + 3000, 32.0));
  for (const auto& [series, samples] : got) {
    if (series.find("unit2") != std::string::npos) continue;
    for (const auto& [t, v] : samples) EXPECT_FALSE(is_stale_marker(v)) << series << " at " << t;
  }
  EXPECT_EQ(rw->counters().samples_sent, 4u * kSeriesPerTick - 2 + 1);
}

TEST(RemoteWrite, ExportsItsQueueAndDeliveryFamilies) {
  testing::TempTree tmp;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto rw = started(fast_options(receiver.url(), tmp.path("state")));
  rw->enqueue(tick(0, now_ms()));
  ASSERT_TRUE(rw->wait_until_drained(10s));
  std::vector<Family> families;
  rw->append_families(families);
  Snapshot s;
  s.families = families;
  ASSERT_NE(s.find("wattprobe_agent_remote_write_queue_samples"), nullptr);
  ASSERT_NE(s.find("wattprobe_agent_remote_write_queue_bytes"), nullptr);
  ASSERT_NE(s.find("wattprobe_agent_remote_write_requests_retried_total"), nullptr);
  const Family* sent = s.find("wattprobe_agent_remote_write_samples_sent_total");
  ASSERT_NE(sent, nullptr);
  EXPECT_EQ(sent->type, MetricType::counter);
  EXPECT_EQ(sent->series.at(0).value, kSeriesPerTick);
  const Family* bytes = s.find("wattprobe_agent_remote_write_sent_bytes_total");
  ASSERT_NE(bytes, nullptr);
  std::size_t body_bytes = 0;
  for (const auto& r : receiver.requests()) body_bytes += r.body.size();
  EXPECT_EQ(bytes->series.at(0).value, static_cast<double>(body_bytes));
  const Family* dropped = s.find("wattprobe_agent_remote_write_samples_dropped_total");
  ASSERT_NE(dropped, nullptr);
  std::vector<std::string> reasons;
  for (const auto& series : dropped->series) reasons.push_back(series.labels.at(0).second);
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "queue_full"), reasons.end());
  EXPECT_NE(std::find(reasons.begin(), reasons.end(), "rejected"), reasons.end());
  ASSERT_NE(s.find("wattprobe_agent_remote_write_requests_failed_total"), nullptr);
}

TEST(RemoteWrite, ValidateNamesTheWrongFieldAndItsValue) {
  RemoteWriteOptions good;
  good.url = "https://mimir.example/api/v1/push";
  good.state_dir = "/var/lib/wattprobe";
  EXPECT_TRUE(validate(good).ok());

  // "remote-write-<field>: malformed: \"<value>\" <why>"
  auto with = [&](auto change) {
    RemoteWriteOptions o = good;
    change(o);
    auto valid = validate(o);
    return valid.ok() ? std::string() : valid.error().message();
  };
  EXPECT_NE(with([](auto& o) { o.url = "ftp://x/"; }).find("url: malformed: \"ftp://x/\""),
            std::string::npos);
  EXPECT_NE(with([](auto& o) { o.basic_auth_user = "u"; }).find("password-file"),
            std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.basic_auth_user = "u";
              o.password_file = "/p";
              o.bearer_token_file = "/t";
            }).find("bearer-token-file"),
            std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.headers = {{"Content-Encoding", "gzip"}};
            }).find("header: malformed: \"Content-Encoding\""),
            std::string::npos);
  std::string injected = with([](auto& o) { o.headers = {{"X-Tenant", "a\r\nEvil: 1"}}; });
  EXPECT_NE(injected.find("CR, LF"), std::string::npos);
  EXPECT_EQ(injected.find("Evil"), std::string::npos) << "never echoes a header value";
  EXPECT_NE(
      with([](auto& o) { o.queue_max_bytes = 100; }).find("queue-max-bytes: malformed: \"100\""),
      std::string::npos);
  EXPECT_NE(with([](auto& o) { o.backoff_max = 1ms; }).find("backoff-max: malformed: \"1ms\""),
            std::string::npos);
  EXPECT_NE(with([](auto& o) { o.state_dir.clear(); }).find("state-dir"), std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.labels = {{"__name__", "x"}};
            }).find("label: malformed: \"__name__\""),
            std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.labels = {{"host-name", "x"}};
            }).find("label: malformed: \"host-name\""),
            std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.labels = {{"dc", "a"}, {"dc", "b"}};
            }).find("twice"),
            std::string::npos);
  EXPECT_EQ(with([](auto& o) { o.labels = {{"instance", "h"}, {"dc", "a"}}; }), "");
  EXPECT_NE(with([](auto& o) {
              o.header_files = {{"Authorization", "/k"}};
            }).find("header-file: malformed: \"Authorization\""),
            std::string::npos);
  EXPECT_NE(with([](auto& o) {
              o.headers = {{"X-Api-Key", "v"}};
              o.header_files = {{"x-api-key", "/k"}};
            }).find("twice"),
            std::string::npos);
  EXPECT_EQ(with([](auto& o) { o.header_files = {{"X-Api-Key", "/k"}}; }), "");

  RemoteWrite rw(RemoteWriteOptions{});  // no url: start() refuses, nothing is created
  auto r = rw.start();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::malformed);
}

// A real Prometheus (Debian package `prometheus`) on 127.0.0.1 with its remote-write receiver,
// its own config and TSDB in a temporary folder. Stopping and starting it again keeps the TSDB,
// as a receiver's outage would.
class PrometheusServer {
 public:
  static constexpr const char* kBinary = "/usr/bin/prometheus";

  explicit PrometheusServer(fs::path dir)
      : dir_(std::move(dir)), port_(testing::free_local_port()) {
    fs::create_directories(dir_ / "data");
    std::ofstream(dir_ / "prometheus.yml") << "global:\n  scrape_interval: 1m\n";
  }
  ~PrometheusServer() { stop(); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string write_url() const { return base() + "/api/v1/write"; }

  /// Empty when it is up and ready; otherwise why not (with the end of its log).
  std::string start() {
    std::string config = "--config.file=" + (dir_ / "prometheus.yml").string();
    std::string tsdb = "--storage.tsdb.path=" + (dir_ / "data").string();
    std::string listen = "--web.listen-address=127.0.0.1:" + std::to_string(port_);
    std::string log = (dir_ / "prometheus.log").string();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls here: the sender thread may hold the malloc lock.
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (out >= 0) {
        ::dup2(out, 1);
        ::dup2(out, 2);
      }
      ::execl(kBinary, kBinary, config.c_str(), tsdb.c_str(), listen.c_str(),
              "--web.enable-remote-write-receiver", "--log.level=warn", nullptr);
      ::_exit(127);
    }
    auto until = std::chrono::steady_clock::now() + 60s;
    while (std::chrono::steady_clock::now() < until) {
      if (http_get(base() + "/-/ready").first == 200) return "";
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "prometheus exited at start-up: " + log_tail();
      }
      std::this_thread::sleep_for(100ms);
    }
    return "prometheus not ready after 60 s: " + log_tail();
  }

  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  /// Instant query at the current time: the result vector, one entry per series.
  nlohmann::json query(const std::string& promql) const {
    CURL* curl = curl_easy_init();
    char* escaped = curl_easy_escape(curl, promql.c_str(), static_cast<int>(promql.size()));
    std::string url = base() + "/api/v1/query?query=" + escaped;
    curl_free(escaped);
    curl_easy_cleanup(curl);
    auto [status, body] = http_get(url);
    EXPECT_EQ(status, 200) << body;
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded() || !json.contains("data")) return nlohmann::json::array();
    return json["data"]["result"];
  }

  /// query() as label value of `by` → the sample value.
  std::map<std::string, double> query_by(const std::string& promql, const std::string& by) const {
    std::map<std::string, double> out;
    for (const auto& r : query(promql)) {
      std::string key = r["metric"].contains(by) ? r["metric"][by].get<std::string>() : "";
      out[key] = std::stod(r["value"][1].get<std::string>());
    }
    return out;
  }

 private:
  static size_t append(char* data, size_t size, size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
  }
  static std::pair<long, std::string> http_get(const std::string& url) {
    CURL* curl = curl_easy_init();
    std::string body;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return {status, body};
  }
  std::string log_tail() const {
    std::ifstream in(dir_ / "prometheus.log");
    std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
  }

  fs::path dir_;
  int port_;
  pid_t pid_ = -1;
};

#define REQUIRE_PROMETHEUS()                          \
  if (::access(PrometheusServer::kBinary, X_OK) != 0) \
  GTEST_SKIP() << PrometheusServer::kBinary           \
               << " is not installed (Debian package prometheus); the real-receiver test needs it"

TEST(RemoteWriteToPrometheus, PushedSamplesArriveAndPromqlFindsThem) {
  REQUIRE_PROMETHEUS();
  testing::TempTree tmp;
  PrometheusServer prometheus(tmp.path("prometheus"));
  std::string why = prometheus.start();
  ASSERT_EQ(why, "");
  auto rw = started(fast_options(prometheus.write_url(), tmp.path("state")));
  int64_t t0 = now_ms() - 20000;
  for (int i = 0; i < 10; ++i) rw->enqueue(tick(i, t0 + i * 1000));
  ASSERT_TRUE(rw->wait_until_drained(30s));
  auto c = rw->counters();
  EXPECT_EQ(c.samples_sent, 10u * kSeriesPerTick);
  EXPECT_EQ(c.dropped_rejected, 0u);

  auto latest =
      prometheus.query(R"(wattprobe_workload_energy_joules_total{workload="unit2.service"})");
  ASSERT_EQ(latest.size(), 1u);
  EXPECT_EQ(latest[0]["metric"]["kind"], "systemd");
  EXPECT_EQ(latest[0]["metric"]["domain"], "package");
  EXPECT_FALSE(latest[0]["metric"].contains("pod"));
  EXPECT_EQ(latest[0]["value"][1], "92");  // tick 9: 9 * 10 + 2

  auto counts = prometheus.query_by("count_over_time(wattprobe_workload_energy_joules_total[5m])",
                                    "workload");
  EXPECT_EQ(counts, (std::map<std::string, double>{
                        {"unit0.service", 10}, {"unit1.service", 10}, {"unit2.service", 10}}));
  auto power = prometheus.query_by("sum_over_time(wattprobe_node_power_watts[5m])", "socket");
  EXPECT_EQ(power, (std::map<std::string, double>{{"0", 95}}));  // Σ 5 + i, i < 10
}

TEST(RemoteWriteToPrometheus, AStaleMarkedSeriesLeavesInstantQueriesAndKeepsItsSamples) {
  REQUIRE_PROMETHEUS();
  testing::TempTree tmp;
  PrometheusServer prometheus(tmp.path("prometheus"));
  ASSERT_EQ(prometheus.start(), "");
  auto rw = started(fast_options(prometheus.write_url(), tmp.path("state")));
  int64_t t0 = now_ms() - 5000;
  rw->enqueue(tick(0, t0));
  rw->enqueue(tick(1, t0 + 1000));
  rw->enqueue(tick_without_unit2(2, t0 + 2000));
  ASSERT_TRUE(rw->wait_until_drained(30s));
  EXPECT_EQ(rw->counters().dropped_rejected, 0u);

  auto now = prometheus.query_by("wattprobe_workload_energy_joules_total", "workload");
  EXPECT_EQ(now, (std::map<std::string, double>{{"unit0.service", 20}, {"unit1.service", 21}}));
  auto counts = prometheus.query_by("count_over_time(wattprobe_workload_energy_joules_total[5m])",
                                    "workload");
  EXPECT_EQ(counts, (std::map<std::string, double>{
                        {"unit0.service", 3}, {"unit1.service", 3}, {"unit2.service", 2}}));
}

TEST(RemoteWriteToPrometheus, AnOutageWithAnAgentRestartInItLosesNoSample) {
  REQUIRE_PROMETHEUS();
  testing::TempTree tmp;
  PrometheusServer prometheus(tmp.path("prometheus"));
  ASSERT_EQ(prometheus.start(), "");
  auto options = fast_options(prometheus.write_url(), tmp.path("state"));
  constexpr int kTicks = 35;
  int64_t t0 = now_ms() - 60000;
  int i = 0;
  auto run_ticks = [&](RemoteWrite& rw, int until) {
    for (; i < until; ++i) {
      rw.enqueue(tick(i, t0 + i * 1000));
      std::this_thread::sleep_for(30ms);
    }
  };

  auto rw = started(options);
  run_ticks(*rw, 10);
  ASSERT_TRUE(rw->wait_until_drained(30s));

  prometheus.stop();
  run_ticks(*rw, 25);
  ASSERT_TRUE(eventually([&] { return rw->counters().failed_connect >= 1; }, 5s));
  EXPECT_EQ(rw->counters().queue_samples, 15u * kSeriesPerTick);

  rw.reset();  // the agent restarts while the receiver is still down
  rw = started(options);
  EXPECT_EQ(rw->counters().queue_samples, 15u * kSeriesPerTick) << "replayed from disk";
  run_ticks(*rw, kTicks);

  ASSERT_EQ(prometheus.start(), "");
  ASSERT_TRUE(rw->wait_until_drained(60s));
  auto c = rw->counters();
  EXPECT_EQ(c.samples_sent, 25u * kSeriesPerTick);
  EXPECT_EQ(c.dropped_rejected + c.dropped_queue_full + c.dropped_corrupt, 0u);

  auto counts = prometheus.query_by("count_over_time(wattprobe_workload_energy_joules_total[10m])",
                                    "workload");
  EXPECT_EQ(counts,
            (std::map<std::string, double>{
                {"unit0.service", kTicks}, {"unit1.service", kTicks}, {"unit2.service", kTicks}}));
  // Every value of the stretch, exactly once: Σ (10 i + w) over 35 ticks = 5950 + 35 w.
  auto sums =
      prometheus.query_by("sum_over_time(wattprobe_workload_energy_joules_total[10m])", "workload");
  EXPECT_EQ(sums, (std::map<std::string, double>{
                      {"unit0.service", 5950}, {"unit1.service", 5985}, {"unit2.service", 6020}}));
  auto power = prometheus.query_by("count_over_time(wattprobe_node_power_watts[10m])", "socket");
  EXPECT_EQ(power, (std::map<std::string, double>{{"0", kTicks}}));
}

// Figures for the issue's closing note: a host with 100 workloads exporting 5 families each.
TEST(RemoteWrite, MeasuresBytesPerSampleOnTheWireAndOnDisk) {
  testing::TempTree tmp;
  auto realistic = [](int i, int64_t ts) {
    Snapshot s;
    s.timestamp_ms = ts;
    for (const char* name :
         {"wattprobe_workload_energy_joules_total", "wattprobe_workload_power_watts",
          "wattprobe_workload_cpu_seconds_total", "wattprobe_workload_operational_co2e_grams_total",
          "wattprobe_workload_embodied_co2e_grams_total"}) {
      Family f{name, "", MetricType::counter, {}};
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
  int64_t t0 = now_ms() - kTicks * 1000;
  std::size_t disk_bytes = 0, disk_samples = 0;
  {
    auto rw = started(fast_options(
        "http://127.0.0.1:" + std::to_string(testing::free_local_port()) + "/api/v1/write",
        tmp.path("state")));
    for (int i = 0; i < kTicks; ++i) rw->enqueue(realistic(i, t0 + i * 1000));
    auto c = rw->counters();
    disk_bytes = c.queue_bytes;
    disk_samples = c.queue_samples;
  }
  FakeHttpReceiver good([](const auto&) { return FakeHttpReceiver::answer(200); });
  auto o = fast_options(good.url(), tmp.path("state"));
  o.max_samples_per_request = 2000;
  auto rw = started(o);
  ASSERT_TRUE(rw->wait_until_drained(20s));
  auto c = rw->counters();
  ASSERT_EQ(c.samples_sent, std::size_t{kTicks} * 500);
  double wire = static_cast<double>(c.wire_bytes) / c.samples_sent;
  double disk = static_cast<double>(disk_bytes) / disk_samples;
  std::printf(
      "remote-write figures: %.2f bytes/sample on the wire (snappy, %zu samples per "
      "request), %.2f disk bytes per queued sample\n",
      wire, o.max_samples_per_request, disk);
  RecordProperty("wire_bytes_per_sample", std::to_string(wire));
  RecordProperty("disk_bytes_per_sample", std::to_string(disk));
  EXPECT_LT(wire, 40.0);
  EXPECT_LT(disk, 40.0);
}

}  // namespace
}  // namespace wattprobe
