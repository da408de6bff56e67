#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/base/snapshot.h"
#include "exporters/gzip_body.h"
#include "exporters/web_config.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace wattprobe {

inline namespace endpoint {
class HttpEndpoint;
}  // namespace endpoint

/// What /healthz answers: an HTTP status and a short text saying why.
struct HealthAnswer {
  int status = 200;
  std::string text;
};

/// zlib level of a gzip /metrics body. The text repeats the same names and labels on every line,
/// so the fastest level already shrinks it 17-fold (10,009 series: 1.76 MB to 100 KiB in 4 ms);
/// zlib's default (6) gets 82 KiB for twice the CPU, paid on every host for every scraped tick,
/// which would take render and gzip together to the 10 ms a scrape of 10,000 series may cost.
inline constexpr int kMetricsGzipLevel = 1;

/// The body of one snapshot's scrapes, rendered once (prometheus_text.h), and deflated once when
/// a scrape asks for gzip. Kept until the snapshot changes.
struct MetricsPage {
  std::shared_ptr<const std::string> text;    // empty before the first snapshot
  std::shared_ptr<const DeflatedPiece> gzip;  // the last piece of a gzip body; null unless asked
};

/// The page of the newest snapshot, whoever asks for it and however often: a second scrape of a
/// snapshot costs no rendering, and scrapes arriving together wait for one rendering rather
/// than each doing its own. Thread-safe.
class MetricsPageCache {
 public:
  explicit MetricsPageCache(std::function<SnapshotPtr()> snapshot,
                            int gzip_level = kMetricsGzipLevel);

  /// The page of the snapshot `snapshot` returns now, with `gzip` filled when asked for.
  MetricsPage page(bool gzip);

  /// How many times a snapshot was rendered, and deflated.
  uint64_t renders() const;
  uint64_t compressions() const;

 private:
  std::function<SnapshotPtr()> snapshot_;
  const int gzip_level_;
  mutable std::mutex mu_;
  // Weak, so that the cache never keeps a replaced snapshot alive; compared by owner, so that a
  // new snapshot allocated where a freed one was is still a new snapshot.
  std::weak_ptr<const Snapshot> key_;
  MetricsPage page_;
  uint64_t renders_ = 0;
  uint64_t compressions_ = 0;
};

/// Whether an Accept-Encoding header value accepts gzip (a `gzip` or `x-gzip` coding whose q is
/// not 0). Null: no header.
bool accepts_gzip(const char* accept_encoding);

/// Serves the last published snapshot at /metrics, and /healthz for liveness and readiness
/// probes, on prometheus-cpp's Exposer (its civetweb server and basic auth). The body is the
/// snapshot's text from a MetricsPageCache, never Counters incremented by hand, so a scrape never
/// waits for a tick and most scrapes cost no rendering; a probe never waits for a tick either,
/// which is what lets /healthz report a hung tick.
class PrometheusPull {
 public:
  /// Binds `listen` ("address:port", port 0 = any free port). Throws std::runtime_error with the
  /// address when it cannot bind. `health` answers /healthz, from the server's threads.
  /// `web`'s basic_auth_users guard /metrics; /healthz stays open, since probes carry no
  /// password. TLS is refused before this is reached (agent/cli/parse_options.cc says why).
  /// `endpoints` (not owned; they outlive this) are served beside /metrics, behind the same
  /// basic auth where they ask for it: a stand-in on civetweb until the agent's own server.
  PrometheusPull(const std::string& listen, std::function<SnapshotPtr()> snapshot,
                 std::function<HealthAnswer()> health, WebConfig web = {},
                 std::vector<HttpEndpoint*> endpoints = {});
  ~PrometheusPull();

  /// The port actually bound.
  int port() const;

 private:
  // Declared first, so it outlives the server whose /healthz handler calls it.
  std::unique_ptr<std::function<HealthAnswer()>> health_;
  // Read by the auth callback on the server's threads: declared before the server as well.
  std::unique_ptr<WebConfig> web_;
  // /metrics' handler state, called from the server's threads: declared before the server too.
  std::unique_ptr<class MetricsEndpoint> metrics_;
  std::vector<HttpEndpoint*> endpoints_;
  std::unique_ptr<prometheus::Exposer> exposer_;
};

/// How long civetweb waits for a whole request before closing the connection.
inline constexpr int kRequestTimeoutMs = 5000;
/// civetweb's workers: each connection holds one until its request is answered.
inline constexpr int kServerThreads = 48;

/// The civetweb options the server starts with (listen address, timeouts, workers).
std::vector<std::string> server_options(const std::string& listen);

}  // namespace wattprobe
