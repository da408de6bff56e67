#include "exporters/prometheus_pull.h"

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string_view>

#include "agent/base/http_endpoint.h"
#include "exporters/prometheus_text.h"

namespace wattprobe {

MetricsPageCache::MetricsPageCache(std::function<SnapshotPtr()> snapshot, int gzip_level)
    : snapshot_(std::move(snapshot)), gzip_level_(gzip_level) {}

MetricsPage MetricsPageCache::page(bool gzip) {
  std::lock_guard lock(mu_);
  SnapshotPtr snap = snapshot_();
  const bool same = page_.text && !key_.owner_before(snap) && !snap.owner_before(key_);
  if (!same) {
    page_.text = std::make_shared<const std::string>(snap ? render_prometheus_text(*snap) : "");
    page_.gzip.reset();
    key_ = snap;
    ++renders_;
  }
  if (gzip && !page_.gzip) {
    page_.gzip = std::make_shared<const DeflatedPiece>(
        deflate_piece(*page_.text, gzip_level_, /*last=*/true));
    ++compressions_;
  }
  MetricsPage out = page_;
  if (!gzip) out.gzip.reset();
  return out;
}

uint64_t MetricsPageCache::renders() const {
  std::lock_guard lock(mu_);
  return renders_;
}

uint64_t MetricsPageCache::compressions() const {
  std::lock_guard lock(mu_);
  return compressions_;
}

bool accepts_gzip(const char* accept_encoding) {
  if (!accept_encoding) return false;
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  auto lower_equals = [](std::string_view s, std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
      const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
      if (c != lower[i]) return false;
    }
    return true;
  };
  std::string_view rest(accept_encoding);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const std::size_t semi = item.find(';');
    const std::string_view coding = trim(item.substr(0, semi));
    if (!lower_equals(coding, "gzip") && !lower_equals(coding, "x-gzip")) continue;
    if (semi == std::string_view::npos) return true;
    // RFC 9110 12.4.2: a q of 0 (0, 0.0, 0.00, 0.000) refuses the coding.
    std::string_view param = trim(item.substr(semi + 1));
    if (param.size() < 2 || !lower_equals(param.substr(0, 2), "q=")) return true;
    param.remove_prefix(2);
    return param.find_first_not_of("0.") != std::string_view::npos;
  }
  return false;
}

/// /metrics: the cached page of the newest snapshot after prometheus-cpp's own three exposer_*
/// families, which change on every scrape (docs/metrics.md lists them).
class MetricsEndpoint {
 public:
  explicit MetricsEndpoint(std::function<SnapshotPtr()> snapshot)
      : cache_(std::move(snapshot)),
        registry_(std::make_shared<prometheus::Registry>()),
        bytes_(prometheus::BuildCounter()
                   .Name("exposer_transferred_bytes_total")
                   .Help("Transferred bytes to metrics services")
                   .Register(*registry_)
                   .Add({})),
        scrapes_(prometheus::BuildCounter()
                     .Name("exposer_scrapes_total")
                     .Help("Number of times metrics were scraped")
                     .Register(*registry_)
                     .Add({})),
        latencies_(
            prometheus::BuildSummary()
                .Name("exposer_request_latencies")
                .Help("Latencies of serving scrape requests, in microseconds")
                .Register(*registry_)
                .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}})) {
  }

  int serve(mg_connection* conn) {
    const auto start = std::chrono::steady_clock::now();
    const mg_request_info* request = mg_get_request_info(conn);
    const char* method = request && request->request_method ? request->request_method : "";
    const bool head = std::strcmp(method, "HEAD") == 0;
    if (!head && std::strcmp(method, "GET") != 0) {
      mg_response_header_start(conn, 405);
      mg_response_header_add(conn, "Allow", "GET, HEAD", -1);
      mg_response_header_add(conn, "Content-Length", "0", -1);
      mg_response_header_send(conn);
      return 405;
    }
    const bool gzip = accepts_gzip(mg_get_header(conn, "Accept-Encoding"));
    try {
      const std::string lead = prometheus::TextSerializer().Serialize(registry_->Collect());
      MetricsPage page = cache_.page(gzip);
      if (gzip) {
        send_gzip(conn, head, lead, *page.gzip);
      } else {
        send_plain(conn, head, lead, *page.text);
      }
    } catch (const std::exception& e) {
      // zlib out of memory, or the render's allocation: an answer, never an exception into
      // civetweb's C frames.
      const std::string why = std::string("cannot render /metrics: ") + e.what() + "\n";
      send(conn, 500, why.size(), nullptr);
      if (!head) mg_write(conn, why.data(), why.size());
      return 500;
    }
    if (!head) {
      latencies_.Observe(static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                 std::chrono::steady_clock::now() - start)
                                                 .count()));
    }
    return 200;
  }

 private:
  static void send(mg_connection* conn, int status, std::size_t length, const char* encoding) {
    const std::string size = std::to_string(length);
    mg_response_header_start(conn, status);
    mg_response_header_add(
        conn, "Content-Type",
        status == 200 ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8",
        -1);
    mg_response_header_add(conn, "Content-Length", size.c_str(), -1);
    if (encoding) mg_response_header_add(conn, "Content-Encoding", encoding, -1);
    mg_response_header_add(conn, "Vary", "Accept-Encoding", -1);
    mg_response_header_send(conn);
  }

  // A scrape is counted before its body goes out: a client that reads the body and scrapes
  // again at once then sees it counted, where counting after the writes raced its next request.
  void count(std::size_t length) {
    bytes_.Increment(static_cast<double>(length));
    scrapes_.Increment();
  }

  void send_plain(mg_connection* conn, bool head, const std::string& lead,
                  const std::string& text) {
    const std::size_t length = lead.size() + text.size();
    send(conn, 200, length, nullptr);
    if (!head) {
      count(length);
      mg_write(conn, lead.data(), lead.size());
      mg_write(conn, text.data(), text.size());
    }
  }

  // One gzip member: the exposer_* lines deflated now, joined to the snapshot's text deflated
  // once for all of its scrapes, under one CRC.
  void send_gzip(mg_connection* conn, bool head, const std::string& lead,
                 const DeflatedPiece& text) {
    const DeflatedPiece first = deflate_piece(lead, kMetricsGzipLevel, /*last=*/false);
    std::string prefix(gzip_header());
    prefix += first.bytes;
    const std::string trailer = gzip_trailer(first, text);
    const std::size_t length = prefix.size() + text.bytes.size() + trailer.size();
    send(conn, 200, length, "gzip");
    if (!head) {
      count(length);
      mg_write(conn, prefix.data(), prefix.size());
      mg_write(conn, text.bytes.data(), text.bytes.size());
      mg_write(conn, trailer.data(), trailer.size());
    }
  }

  MetricsPageCache cache_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Counter& bytes_;
  prometheus::Counter& scrapes_;
  prometheus::Summary& latencies_;
};

namespace {

int serve_metrics(mg_connection* conn, void* cbdata) {
  return static_cast<MetricsEndpoint*>(cbdata)->serve(conn);
}

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

std::string url_decode(std::string_view s) {
  std::string out(s.size() + 1, '\0');
  const int n = mg_url_decode(s.data(), static_cast<int>(s.size()), out.data(),
                              static_cast<int>(out.size()), /*is_form_url_encoded=*/1);
  out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
  return out;
}

/// An HttpEndpoint on civetweb: the request as the endpoint contract has it, the answer written
/// back. The agent's own server replaces this adapter.
int serve_endpoint(mg_connection* conn, void* cbdata) {
  auto* endpoint = static_cast<HttpEndpoint*>(cbdata);
  const mg_request_info* info = mg_get_request_info(conn);
  HttpRequest request;
  request.method = info->request_method ? info->request_method : "";
  request.path = info->local_uri ? info->local_uri : "";  // civetweb has decoded it
  std::string_view query = info->query_string ? info->query_string : "";
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    request.query.emplace_back(
        url_decode(item.substr(0, eq)),
        eq == std::string_view::npos ? std::string() : url_decode(item.substr(eq + 1)));
  }
  for (int i = 0; i < info->num_headers; ++i) {
    std::string name = info->http_headers[i].name ? info->http_headers[i].name : "";
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    request.headers.emplace_back(std::move(name),
                                 info->http_headers[i].value ? info->http_headers[i].value : "");
  }
  request.remote_address = info->remote_addr;
  HttpResponse response;
  try {
    response = endpoint->handle(request);
  } catch (const std::exception& e) {
    response = HttpResponse{500, "text/plain; charset=utf-8", e.what(), {}};
  }
  const std::string length = std::to_string(response.body.size());
  mg_response_header_start(conn, response.status);
  mg_response_header_add(conn, "Content-Type", response.content_type.c_str(), -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
  }
  mg_response_header_send(conn);
  if (request.method != "HEAD") mg_write(conn, response.body.data(), response.body.size());
  return response.status;
}

// The Exposer keeps its CivetServer private. civetweb calls init_context inside mg_start, on the
// thread constructing the Exposer and before any request can arrive: the one moment a handler of
// our own can join the Exposer's server, and where its context can be kept for /metrics'. The
// constructor sets these for exactly that call.
thread_local const std::function<HealthAnswer()>* g_health_to_register = nullptr;
thread_local mg_context** g_context_out = nullptr;

void register_health(const mg_context* ctx) {
  if (!g_health_to_register) return;
  // civetweb passes the context const, but this is the documented moment to configure it.
  mg_set_request_handler(const_cast<mg_context*>(ctx), "/healthz", serve_health,
                         const_cast<std::function<HealthAnswer()>*>(g_health_to_register));
  if (g_context_out) *g_context_out = const_cast<mg_context*>(ctx);
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
                               std::function<HealthAnswer()> health, WebConfig web,
                               std::vector<HttpEndpoint*> endpoints)
    : health_(std::make_unique<std::function<HealthAnswer()>>(std::move(health))),
      web_(std::make_unique<WebConfig>(std::move(web))),
      metrics_(std::make_unique<MetricsEndpoint>(std::move(snapshot))),
      endpoints_(std::move(endpoints)) {
  CivetCallbacks callbacks;
  callbacks.init_context = register_health;
  mg_context* context = nullptr;
  g_health_to_register = health_.get();
  g_context_out = &context;
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(server_options(listen), &callbacks);
  } catch (const std::exception& e) {
    g_health_to_register = nullptr;
    g_context_out = nullptr;
    throw std::runtime_error("cannot listen on " + listen + ": " + e.what());
  }
  g_health_to_register = nullptr;
  g_context_out = nullptr;
  if (!context) throw std::runtime_error("cannot listen on " + listen + ": no server context");
  // The auth handler first, then ours: civetweb keeps request and auth handlers apart and runs
  // the auth handler of a URI before its request handler, so setting ours for "/metrics" replaces
  // only the Exposer's request handler and keeps its Basic auth. Until ours is set, /metrics is
  // the Exposer's (behind the same auth), never open.
  if (!web_->basic_auth_users.empty()) {
    const WebConfig* config = web_.get();
    exposer_->RegisterAuth(
        [config](const std::string& user, const std::string& password) {
          return check_basic_auth(*config, user, password);
        },
        "wattprobe", "/metrics");
  }
  mg_set_request_handler(context, "/metrics", serve_metrics, metrics_.get());
  for (HttpEndpoint* endpoint : endpoints_) {
    for (std::string path : endpoint->paths()) {
      // civetweb's "/emissions" takes "/emissions/..." too: the contract's prefix form.
      if (path.size() > 1 && path.back() == '/') path.pop_back();
      if (endpoint->needs_auth() && !web_->basic_auth_users.empty()) {
        const WebConfig* config = web_.get();
        exposer_->RegisterAuth(
            [config](const std::string& user, const std::string& password) {
              return check_basic_auth(*config, user, password);
            },
            "wattprobe", path);
      }
      mg_set_request_handler(context, path.c_str(), serve_endpoint, endpoint);
    }
  }
}

PrometheusPull::~PrometheusPull() = default;

int PrometheusPull::port() const {
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace wattprobe
