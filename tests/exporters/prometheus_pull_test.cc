#include "exporters/prometheus_pull.h"

#include <crypt.h>
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "exporters/http_server.h"
#include "exporters/prometheus_text.h"
#include "tests/support/gunzip.h"

namespace wattprobe {
namespace {

using testing::gunzip;

SnapshotPtr snapshot_of(int workloads, double value) {
  auto snap = std::make_shared<Snapshot>();
  Family f("wattprobe_workload_energy_joules_total", "Energy attributed to the workload.",
           MetricType::counter);
  for (int i = 0; i < workloads; ++i)
    f.series.push_back({{{"workload", "w" + std::to_string(i) + ".service"}}, value + i});
  snap->families.push_back(std::move(f));
  return snap;
}

/// A snapshot source a test switches, as the agent's tick does.
struct Published {
  std::mutex mu;
  SnapshotPtr snap;
  std::function<SnapshotPtr()> source() {
    return [this] {
      std::lock_guard lock(mu);
      return snap;
    };
  }
  void publish(SnapshotPtr s) {
    std::lock_guard lock(mu);
    snap = std::move(s);
  }
};

TEST(MetricsPageCache, SecondScrapeOfASnapshotIsNotRenderedAgain) {
  Published pub;
  pub.publish(snapshot_of(3, 1.5));
  MetricsPageCache cache(pub.source());
  MetricsPage first = cache.page(false);
  MetricsPage second = cache.page(false);
  EXPECT_EQ(cache.renders(), 1u);
  EXPECT_EQ(first.text.get(), second.text.get());
  EXPECT_EQ(*first.text, render_prometheus_text(*pub.snap));
  EXPECT_EQ(first.gzip, nullptr);

  pub.publish(snapshot_of(3, 2.5));
  MetricsPage third = cache.page(false);
  EXPECT_EQ(cache.renders(), 2u);
  EXPECT_EQ(*third.text, render_prometheus_text(*pub.snap));
  EXPECT_NE(*third.text, *first.text);
}

TEST(MetricsPageCache, GzipIsDeflatedOncePerSnapshot) {
  Published pub;
  pub.publish(snapshot_of(3, 1.5));
  MetricsPageCache cache(pub.source());
  MetricsPage plain = cache.page(false);
  MetricsPage a = cache.page(true);
  MetricsPage b = cache.page(true);
  EXPECT_EQ(cache.renders(), 1u);
  EXPECT_EQ(cache.compressions(), 1u);
  ASSERT_NE(a.gzip, nullptr);
  EXPECT_EQ(a.gzip.get(), b.gzip.get());
  EXPECT_EQ(a.text.get(), plain.text.get());
  EXPECT_EQ(a.gzip->size, plain.text->size());
  pub.publish(snapshot_of(3, 2.5));
  cache.page(true);
  EXPECT_EQ(cache.compressions(), 2u);
}

TEST(MetricsPageCache, ScrapesArrivingTogetherRenderOnce) {
  Published pub;
  pub.publish(snapshot_of(5000, 1.5));
  MetricsPageCache cache(pub.source());
  std::vector<std::thread> scrapers;
  std::vector<const std::string*> seen(8);
  for (std::size_t i = 0; i < seen.size(); ++i)
    scrapers.emplace_back([&, i] { seen[i] = cache.page(i % 2 == 0).text.get(); });
  for (auto& t : scrapers) t.join();
  EXPECT_EQ(cache.renders(), 1u);
  EXPECT_EQ(cache.compressions(), 1u);
  for (const std::string* p : seen) EXPECT_EQ(p, seen.front());
}

TEST(MetricsPageCache, NoSnapshotYetIsAnEmptyPage) {
  MetricsPageCache cache([] { return SnapshotPtr(); });
  MetricsPage page = cache.page(true);
  ASSERT_NE(page.text, nullptr);
  EXPECT_EQ(*page.text, "");
  ASSERT_NE(page.gzip, nullptr);
  EXPECT_EQ(page.gzip->size, 0u);
}

TEST(AcceptsGzip, ReadsAcceptEncodingAsRfc9110Says) {
  EXPECT_FALSE(accepts_gzip(nullptr));
  EXPECT_FALSE(accepts_gzip(""));
  EXPECT_TRUE(accepts_gzip("gzip"));
  EXPECT_TRUE(accepts_gzip("GZip"));
  EXPECT_TRUE(accepts_gzip("x-gzip"));
  EXPECT_TRUE(accepts_gzip("deflate, gzip, br, zstd"));  // curl --compressed
  EXPECT_TRUE(accepts_gzip("gzip;q=0.5, identity;q=1"));
  EXPECT_TRUE(accepts_gzip("gzip ; q=1.0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000"));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip("deflate, br"));
  EXPECT_FALSE(accepts_gzip("gzipped"));
}

/// /metrics and /healthz on the agent's HTTP server, as main.cc puts them together.
struct Pull {
  Pull(std::function<SnapshotPtr()> snapshot, std::function<HealthAnswer()> health,
       WebConfig web = {})
      : metrics(make_metrics_endpoint(std::move(snapshot))),
        healthz(make_health_endpoint(std::move(health))),
        server({"127.0.0.1:0"}, {metrics.get(), healthz.get()}, std::move(web)) {}
  int port() const { return server.ports().front(); }
  std::shared_ptr<HttpEndpoint> metrics;
  std::shared_ptr<HttpEndpoint> healthz;
  HttpServer server;
};

struct Answer {
  long status = 0;
  std::string body;
  std::string headers;
};

size_t append_to(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// A request to the pull server with curl, the body left as sent (no decoding).
Answer request(int port, const char* method, const char* accept_encoding,
               const char* user_password = nullptr) {
  Answer a;
  CURL* curl = curl_easy_init();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  if (std::string(method) == "HEAD") curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  curl_slist* headers = nullptr;
  if (accept_encoding)
    headers =
        curl_slist_append(headers, (std::string("Accept-Encoding: ") + accept_encoding).c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_to);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, append_to);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &a.headers);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  if (user_password) curl_easy_setopt(curl, CURLOPT_USERPWD, user_password);
  if (curl_easy_perform(curl) == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &a.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return a;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

/// Over HTTP: the snapshot's text after prometheus-cpp's exposer_* families, plain or gzip, with
/// the 0.0.4 content type; HEAD answers the headers alone; other methods are refused.
TEST(PrometheusPull, ServesTheSnapshotPlainAndGzip) {
  Published pub;
  pub.publish(snapshot_of(2000, 1.5));
  Pull pull(pub.source(), [] { return HealthAnswer{200, "ok\n"}; });
  const std::string want = render_prometheus_text(*pub.snap);

  Answer plain = request(pull.port(), "GET", nullptr);
  EXPECT_EQ(plain.status, 200);
  EXPECT_NE(plain.headers.find("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            std::string::npos)
      << plain.headers;
  EXPECT_EQ(plain.headers.find("Content-Encoding"), std::string::npos) << plain.headers;
  EXPECT_TRUE(ends_with(plain.body, want));
  EXPECT_EQ(plain.body.rfind("# HELP exposer_", 0), 0u) << plain.body.substr(0, 200);
  EXPECT_NE(plain.body.find("\nexposer_scrapes_total 0\n"), std::string::npos);

  Answer gz = request(pull.port(), "GET", "gzip");
  EXPECT_EQ(gz.status, 200);
  EXPECT_NE(gz.headers.find("Content-Encoding: gzip"), std::string::npos) << gz.headers;
  EXPECT_NE(gz.headers.find("Content-Length: " + std::to_string(gz.body.size()) + "\r\n"),
            std::string::npos)
      << gz.headers;
  EXPECT_LT(gz.body.size() * 4, plain.body.size());
  const std::string decoded = gunzip(gz.body);
  EXPECT_TRUE(ends_with(decoded, want)) << decoded.substr(0, 300);
  // The exposer_* lines are the ones that change on each scrape: one scrape was counted.
  EXPECT_NE(decoded.find("\nexposer_scrapes_total 1\n"), std::string::npos)
      << decoded.substr(0, 900);

  Answer head = request(pull.port(), "HEAD", "gzip");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_NE(head.headers.find("Content-Encoding: gzip"), std::string::npos) << head.headers;
  EXPECT_NE(head.headers.find("Content-Length: "), std::string::npos) << head.headers;

  Answer post = request(pull.port(), "POST", nullptr);
  EXPECT_EQ(post.status, 405);
  EXPECT_NE(post.headers.find("Allow: GET, HEAD"), std::string::npos) << post.headers;
}

TEST(PrometheusPull, BeforeTheFirstSnapshotOnlyTheServersOwnFamilies) {
  Pull pull([] { return SnapshotPtr(); }, [] { return HealthAnswer{503, "no tick yet\n"}; });
  Answer plain = request(pull.port(), "GET", nullptr);
  EXPECT_EQ(plain.status, 200);
  EXPECT_NE(plain.body.find("exposer_scrapes_total"), std::string::npos);
  EXPECT_EQ(plain.body.find("wattprobe_"), std::string::npos);
  Answer gz = request(pull.port(), "GET", "gzip");
  EXPECT_NE(gunzip(gz.body).find("exposer_scrapes_total 1"), std::string::npos);
}

/// --web-config-file's basic auth guards /metrics, gzip or not, and HEAD too.
TEST(PrometheusPull, BasicAuthStillGuardsMetrics) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  ASSERT_NE(crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof salt), nullptr);
  crypt_data data{};
  const char* hash = crypt_r("secret", salt, &data);
  ASSERT_NE(hash, nullptr);
  WebConfig web;
  web.basic_auth_users["prometheus"] = hash;
  Published pub;
  pub.publish(snapshot_of(3, 1.5));
  Pull pull(
      pub.source(),
      [] {
        return HealthAnswer{200, "ok\n"};
      },
      web);
  EXPECT_EQ(request(pull.port(), "GET", nullptr).status, 401);
  EXPECT_EQ(request(pull.port(), "GET", "gzip", "prometheus:wrong").status, 401);
  EXPECT_EQ(request(pull.port(), "HEAD", nullptr, "prometheus:wrong").status, 401);
  Answer right = request(pull.port(), "GET", "gzip", "prometheus:secret");
  EXPECT_EQ(right.status, 200);
  EXPECT_TRUE(ends_with(gunzip(right.body), render_prometheus_text(*pub.snap)));
}

}  // namespace
}  // namespace wattprobe
