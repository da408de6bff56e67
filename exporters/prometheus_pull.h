#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/base/snapshot.h"
#include "exporters/gzip_body.h"

namespace wattprobe {

class HttpEndpoint;

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

/// /metrics: the cached page of the newest snapshot (MetricsPageCache) after the server's own
/// three exposer_* families (scrapes, bytes and latencies, counted here; docs/metrics.md), plain
/// or gzip as the scrape asks. The body is never Counters incremented by hand, so a scrape never
/// waits for a tick and most scrapes cost no rendering.
std::shared_ptr<HttpEndpoint> make_metrics_endpoint(std::function<SnapshotPtr()> snapshot);

/// /healthz, for liveness and readiness probes: `health`'s answer, status code included. Open
/// without a password, since probes carry none, and never waiting for a tick, which is what lets
/// it report a hung one.
std::shared_ptr<HttpEndpoint> make_health_endpoint(std::function<HealthAnswer()> health);

}  // namespace wattprobe
