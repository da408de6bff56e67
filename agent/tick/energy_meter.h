#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "agent/base/snapshot.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// One (source, domain, socket) row of a tick: the node's measured energy.
struct DomainEnergy {
  std::string source;
  std::string domain;
  int socket = -1;
  bool measured = true;
  double joules = 0;        // in this tick
  double watts = 0;         // joules / tick seconds
  double total_joules = 0;  // cumulative, across wraparound and (with a checkpoint) restarts
};

struct NodeEnergy {
  double seconds = 0;
  std::vector<DomainEnergy> domains;  // in source priority order
};

/// Turns the sources' raw readings into per-tick joules, once for every source (docs/architecture.md):
/// deltas, wraparound at the counter's modulus, integration of power gauges, per-socket
/// aggregation of dies, and de-duplication — a (domain, socket) already given by a source of
/// higher priority is never counted again from another.
class EnergyMeter {
 public:
  /// `sources` in priority order (the registry's order).
  explicit EnergyMeter(std::vector<std::unique_ptr<EnergySource>> sources);

  /// Samples every source. `seconds` is the monotonic time since the previous tick; the first
  /// tick only primes the counters and reports zero joules.
  NodeEnergy tick(double seconds);

  /// Continues cumulative totals from a checkpoint: key is {source, domain, socket}. `measured`
  /// labels a row whose source is no longer in use (the next tick sets it for the others), so a
  /// restored estimate is never shown as a measurement.
  void restore_total(const std::string& source, const std::string& domain, int socket,
                     double joules, bool measured = true);

  struct Total {
    std::string source, domain;
    int socket = 0;
    double joules = 0;
    bool measured = true;
  };
  /// Every row's cumulative joules, for a checkpoint; restore_total takes them back.
  std::vector<Total> totals() const;

  void append_families(std::vector<Family>& out) const;

  const std::vector<std::unique_ptr<EnergySource>>& sources() const { return sources_; }
  /// Errors by {collector, reason} since start.
  const std::map<std::pair<std::string, std::string>, uint64_t>& errors() const { return errors_; }

 private:
  struct Counter {
    uint64_t raw = 0;
    bool primed = false;
  };
  using RowKey = std::tuple<std::string, std::string, int>;  // source, domain, socket

  std::vector<std::unique_ptr<EnergySource>> sources_;
  std::map<std::pair<std::string, std::string>, Counter> counters_;  // {source, reading key}
  std::map<RowKey, DomainEnergy> rows_;  // every row ever seen, with its total
  std::map<std::pair<std::string, std::string>, uint64_t> errors_;
  bool first_tick_ = true;
};

/// Δ of a counter that runs 0..modulus-1 (modulus 0: the full 64-bit range).
uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t modulus);

}  // namespace wattprobe
