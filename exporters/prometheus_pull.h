#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/base/snapshot.h"

namespace prometheus {
class Collectable;
class Exposer;
}

namespace wattprobe {

/// Serves the last published snapshot at /metrics with prometheus-cpp, and /healthz for
/// liveness and readiness probes. Values come from the snapshot through a Collectable (STYLE.md),
/// never from Counters incremented by hand, so a scrape costs one conversion and never waits
/// for a tick.
class PrometheusPull {
 public:
  /// Binds `listen` ("address:port", port 0 = any free port). Throws std::runtime_error with the
  /// address when it cannot bind.
  PrometheusPull(const std::string& listen, std::function<SnapshotPtr()> snapshot);
  ~PrometheusPull();

  /// The port actually bound.
  int port() const;

 private:
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<class SnapshotCollectable> metrics_;
  std::shared_ptr<class HealthCollectable> health_;
};

/// The /metrics Collectable alone, for benchmarks and tests of the exposition.
std::shared_ptr<prometheus::Collectable> make_snapshot_collectable(
    std::function<SnapshotPtr()> snapshot);

}  // namespace wattprobe
