#include "exporters/prometheus_pull.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include <cstring>
#include <limits>
#include <stdexcept>

namespace wattprobe {

class SnapshotCollectable : public prometheus::Collectable {
 public:
  explicit SnapshotCollectable(std::function<SnapshotPtr()> snapshot)
      : snapshot_(std::move(snapshot)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    SnapshotPtr snap = snapshot_();
    std::vector<prometheus::MetricFamily> out;
    if (!snap) return out;
    out.reserve(snap->families.size());
    for (const Family& f : snap->families) {
      prometheus::MetricFamily mf;
      mf.name = f.name;
      mf.help = f.help;
      if (f.type == MetricType::histogram) {
        mf.type = prometheus::MetricType::Histogram;
        if (f.histogram) {
          prometheus::ClientMetric m;
          m.histogram.sample_count = f.histogram->count;
          m.histogram.sample_sum = f.histogram->sum;
          for (std::size_t i = 0; i < f.histogram->bounds.size(); ++i) {
            prometheus::ClientMetric::Bucket b;
            b.upper_bound = f.histogram->bounds[i];
            b.cumulative_count = f.histogram->cumulative[i];
            m.histogram.bucket.push_back(b);
          }
          prometheus::ClientMetric::Bucket inf;
          inf.upper_bound = std::numeric_limits<double>::infinity();
          inf.cumulative_count = f.histogram->count;
          m.histogram.bucket.push_back(inf);
          mf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(mf));
        continue;
      }
      mf.type = f.type == MetricType::counter ? prometheus::MetricType::Counter
                                              : prometheus::MetricType::Gauge;
      mf.metric.reserve(f.series.size());
      for (const Series& s : f.series) {
        prometheus::ClientMetric m;
        m.label.reserve(s.labels.size());
        for (const auto& [k, v] : s.labels) m.label.push_back({k, v});
        if (f.type == MetricType::counter) {
          m.counter.value = s.value;
        } else {
          m.gauge.value = s.value;
        }
        mf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(mf));
    }
    return out;
  }

 private:
  std::function<SnapshotPtr()> snapshot_;
};

namespace {

/// /healthz with the status code of `answer`: the Exposer's own handlers always answer 200.
int serve_health(mg_connection* conn, void* cbdata) {
  HealthAnswer a = (*static_cast<const std::function<HealthAnswer()>*>(cbdata))();
  const mg_request_info* request = mg_get_request_info(conn);
  const bool head =
      request && request->request_method && std::strcmp(request->request_method, "HEAD") == 0;
  const std::string length = std::to_string(a.text.size());
  mg_response_header_start(conn, a.status);
  mg_response_header_add(conn, "Content-Type", "text/plain; charset=utf-8", -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  mg_response_header_send(conn);
  if (!head) mg_write(conn, a.text.data(), a.text.size());
  return a.status;
}

// The Exposer keeps its CivetServer private. civetweb calls init_context inside mg_start, on the
// thread constructing the Exposer and before any request can arrive: the one moment a handler of
// our own can join the Exposer's server. The constructor sets this for exactly that call.
thread_local const std::function<HealthAnswer()>* g_health_to_register = nullptr;

void register_health(const mg_context* ctx) {
  if (!g_health_to_register) return;
  // civetweb passes the context const, but this is the documented moment to configure it.
  mg_set_request_handler(const_cast<mg_context*>(ctx), "/healthz", serve_health,
                         const_cast<std::function<HealthAnswer()>*>(g_health_to_register));
}

}  // namespace

std::vector<std::string> server_options(const std::string& listen) {
  return {
      "listening_ports",
      listen,
      // civetweb gives each connection one worker from accepting it until its request is
      // answered, so a client that sends half a request and stops holds a worker. The timeout
      // frees it; with only two workers, two such clients held /healthz for 30 s and a liveness
      // probe failed. A scrape or probe sends its whole request at once, so 5 s is generous.
      "request_timeout_ms",
      std::to_string(kRequestTimeoutMs),
      // Enough workers that the slow clients one timeout can gather still leave some free for
      // probes and scrapes; a worker is a sleeping thread, and costs only its stack.
      "num_threads",
      std::to_string(kServerThreads),
      // Refuse oversized request headers early (a scrape's are a few hundred bytes).
      "max_request_size",
      "16384",
  };
}

PrometheusPull::PrometheusPull(const std::string& listen, std::function<SnapshotPtr()> snapshot,
                               std::function<HealthAnswer()> health, WebConfig web)
    : health_(std::make_unique<std::function<HealthAnswer()>>(std::move(health))),
      web_(std::make_unique<WebConfig>(std::move(web))) {
  CivetCallbacks callbacks;
  callbacks.init_context = register_health;
  g_health_to_register = health_.get();
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(server_options(listen), &callbacks);
  } catch (const std::exception& e) {
    g_health_to_register = nullptr;
    throw std::runtime_error("cannot listen on " + listen + ": " + e.what());
  }
  g_health_to_register = nullptr;
  metrics_ = std::make_shared<SnapshotCollectable>(snapshot);
  exposer_->RegisterCollectable(metrics_, "/metrics");
  if (!web_->basic_auth_users.empty()) {
    const WebConfig* config = web_.get();
    exposer_->RegisterAuth(
        [config](const std::string& user, const std::string& password) {
          return check_basic_auth(*config, user, password);
        },
        "wattprobe", "/metrics");
  }
}

PrometheusPull::~PrometheusPull() = default;

std::shared_ptr<prometheus::Collectable> make_snapshot_collectable(
    std::function<SnapshotPtr()> snapshot) {
  return std::make_shared<SnapshotCollectable>(std::move(snapshot));
}

int PrometheusPull::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace wattprobe
