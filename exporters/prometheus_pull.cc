#include "exporters/prometheus_pull.h"

#include <prometheus/counter.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>
#include <prometheus/text_serializer.h>

#include <chrono>
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

namespace {

class MetricsEndpoint : public HttpEndpoint {
 public:
  explicit MetricsEndpoint(std::function<SnapshotPtr()> snapshot);
  std::vector<std::string> paths() const override { return {"/metrics"}; }
  HttpResponse handle(const HttpRequest& request) override;

 private:
  struct Counters;
  MetricsPageCache cache_;
  std::unique_ptr<Counters> counters_;
};

class HealthEndpoint : public HttpEndpoint {
 public:
  explicit HealthEndpoint(std::function<HealthAnswer()> health) : health_(std::move(health)) {}
  std::vector<std::string> paths() const override { return {"/healthz"}; }
  bool needs_auth() const override { return false; }
  HttpResponse handle(const HttpRequest& request) override;

 private:
  std::function<HealthAnswer()> health_;
};

struct MetricsEndpoint::Counters {
  Counters()
      : registry(std::make_shared<prometheus::Registry>()),
        bytes(prometheus::BuildCounter()
                  .Name("exposer_transferred_bytes_total")
                  .Help("Transferred bytes to metrics services")
                  .Register(*registry)
                  .Add({})),
        scrapes(prometheus::BuildCounter()
                    .Name("exposer_scrapes_total")
                    .Help("Number of times metrics were scraped")
                    .Register(*registry)
                    .Add({})),
        latencies(
            prometheus::BuildSummary()
                .Name("exposer_request_latencies")
                .Help("Latencies of serving scrape requests, in microseconds")
                .Register(*registry)
                .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}})) {
  }
  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Counter& bytes;
  prometheus::Counter& scrapes;
  prometheus::Summary& latencies;
};

MetricsEndpoint::MetricsEndpoint(std::function<SnapshotPtr()> snapshot)
    : cache_(std::move(snapshot)), counters_(std::make_unique<Counters>()) {}

HttpResponse MetricsEndpoint::handle(const HttpRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  const bool head = request.method == "HEAD";
  const auto encoding = request.header("accept-encoding");
  const bool gzip = accepts_gzip(encoding ? encoding->c_str() : nullptr);
  HttpResponse r;
  r.headers.emplace_back("Vary", "Accept-Encoding");
  try {
    const std::string lead = prometheus::TextSerializer().Serialize(counters_->registry->Collect());
    MetricsPage page = cache_.page(gzip);
    if (gzip) {
      // One gzip member: the exposer_* lines deflated now, joined to the snapshot's text
      // deflated once for all of its scrapes, under one CRC.
      const DeflatedPiece first = deflate_piece(lead, kMetricsGzipLevel, /*last=*/false);
      const std::string trailer = gzip_trailer(first, *page.gzip);
      r.body.reserve(10 + first.bytes.size() + page.gzip->bytes.size() + trailer.size());
      r.body = gzip_header();
      r.body += first.bytes;
      r.body += page.gzip->bytes;
      r.body += trailer;
      r.headers.emplace_back("Content-Encoding", "gzip");
    } else {
      r.body.reserve(lead.size() + page.text->size());
      r.body = lead;
      r.body += *page.text;
    }
  } catch (const std::exception& e) {
    // zlib out of memory, or the render's allocation: an answer, never a dropped connection.
    r.status = 500;
    r.body = std::string("cannot render /metrics: ") + e.what() + "\n";
    return r;
  }
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  if (!head) {
    // Counted before the body goes out: a client that reads it and scrapes again at once then
    // sees it counted.
    counters_->bytes.Increment(static_cast<double>(r.body.size()));
    counters_->scrapes.Increment();
    counters_->latencies.Observe(
        static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count()));
  }
  return r;
}

HttpResponse HealthEndpoint::handle(const HttpRequest&) {
  HealthAnswer a = health_();
  HttpResponse r;
  r.status = a.status;
  r.body = std::move(a.text);
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace

std::shared_ptr<HttpEndpoint> make_metrics_endpoint(std::function<SnapshotPtr()> snapshot) {
  return std::make_shared<MetricsEndpoint>(std::move(snapshot));
}

std::shared_ptr<HttpEndpoint> make_health_endpoint(std::function<HealthAnswer()> health) {
  return std::make_shared<HealthEndpoint>(std::move(health));
}

}  // namespace wattprobe
