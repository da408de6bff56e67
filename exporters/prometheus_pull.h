#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/base/snapshot.h"
#include "exporters/web_config.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace wattprobe {

/// What /healthz answers: an HTTP status and a short text saying why.
struct HealthAnswer {
  int status = 200;
  std::string text;
};

/// Serves the last published snapshot at /metrics with prometheus-cpp, and /healthz for
/// liveness and readiness probes. Values come from the snapshot through a Collectable, never
/// from Counters incremented by hand, so a scrape costs one conversion and never waits for a
/// tick; a probe never waits for one either, which is what lets /healthz report a hung tick.
class PrometheusPull {
 public:
  /// Binds `listen` ("address:port", port 0 = any free port). Throws std::runtime_error with the
  /// address when it cannot bind. `health` answers /healthz, from the server's threads.
  /// `web`'s basic_auth_users guard /metrics; /healthz stays open, since probes carry no
  /// password. TLS is refused before this is reached (agent/cli/parse_options.cc says why).
  PrometheusPull(const std::string& listen, std::function<SnapshotPtr()> snapshot,
                 std::function<HealthAnswer()> health, WebConfig web = {});
  ~PrometheusPull();

  /// The port actually bound.
  int port() const;

 private:
  // Declared first, so it outlives the server whose /healthz handler calls it.
  std::unique_ptr<std::function<HealthAnswer()>> health_;
  // Read by the auth callback on the server's threads: declared before the server as well.
  std::unique_ptr<WebConfig> web_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<class SnapshotCollectable> metrics_;
};

/// How long civetweb waits for a whole request before closing the connection.
inline constexpr int kRequestTimeoutMs = 5000;
/// civetweb's workers: each connection holds one until its request is answered.
inline constexpr int kServerThreads = 48;

/// The civetweb options the server starts with (listen address, timeouts, workers).
std::vector<std::string> server_options(const std::string& listen);

/// The /metrics Collectable alone, for benchmarks and tests of the exposition.
std::shared_ptr<prometheus::Collectable> make_snapshot_collectable(
    std::function<SnapshotPtr()> snapshot);

}  // namespace wattprobe
