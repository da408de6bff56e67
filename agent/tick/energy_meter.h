#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "agent/base/snapshot.h"
#include "collectors/energy/counter_stall.h"
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

/// Turns the sources' raw readings into per-tick joules, once for every source
/// (docs/architecture.md): deltas, wraparound at the counter's modulus, integration of power
/// gauges, per-socket aggregation of dies, and de-duplication — a (domain, socket) already given by
/// a source of higher priority is never counted again from another.
///
/// Stalled counters (README "Stalled counters"): every (source, domain, socket) row whose
/// counters must move (counter_must_advance) has a StallDetector fed with the tick's CPU
/// evidence. A stalled row gives no energy and claims nothing, so its (domain, socket) comes
/// from the next source in priority that has it: a lower chosen source, else a standby source
/// (another path to the counters, or the `model` estimate, whose single host-wide package row
/// then stands in for every socket of the package domain). A row is used only in ticks it was
/// not stalled at either end: the tick in which a stalled counter moves again still comes from
/// the stand-in, because the counter's delta spans the time the stand-in already counted.
/// A source that knows_stalls() (`host`) is not judged by CPU evidence: its Reading::known_stalled
/// stalls the row at once, and the row recovers when its counter moves again.
class EnergyMeter {
 public:
  /// `sources` in priority order (the registry's order); `standby` likewise, read every tick
  /// (so their counters are primed) but used only for the rows of a stalled counter; `stalled`
  /// the counters the start-up check found stalled.
  explicit EnergyMeter(std::vector<std::unique_ptr<EnergySource>> sources,
                       std::vector<std::unique_ptr<EnergySource>> standby = {},
                       const std::vector<StalledAtStart>& stalled = {}, StallPolicy policy = {});

  /// Samples every source. `seconds` is the monotonic time since the previous tick; the first
  /// tick only primes the counters and reports zero joules. `busy_cpus` is how many CPUs' worth
  /// of work the host did over the tick (nullopt when unknown): the stall detectors' evidence.
  NodeEnergy tick(double seconds, std::optional<double> busy_cpus = std::nullopt);

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
  /// Transitions to stalled by {source, domain} since start.
  const std::map<std::pair<std::string, std::string>, uint64_t>& stalls() const { return stalls_; }
  /// Whether the row's counters are stalled now.
  bool stalled(const std::string& source, const std::string& domain, int socket) const;

 private:
  struct Counter {
    uint64_t raw = 0;
    bool primed = false;
  };
  using RowKey = std::tuple<std::string, std::string, int>;  // source, domain, socket
  /// The stall state of one watched row.
  struct Watch {
    StallDetector detector;
    std::string keys;  // its counters' keys, for the log
    bool measured = true;
  };
  /// One row's readings in one tick, before the meter decides which rows it uses.
  struct Candidate {
    RowKey key;
    std::size_t source = 0;  // index into all_
    bool measured = true;
    double joules = 0;
    bool counter = false;        // made of energy counters (else a power gauge)
    bool primed = true;          // every counter had a previous value
    bool advanced = false;       // some counter moved
    bool known_stalled = false;  // the source said so (Reading::known_stalled)
    bool knows_stalls = false;   // the source's own word decides (EnergySource::knows_stalls)
    std::vector<std::string> keys;
  };
  struct RowState {
    DomainEnergy energy;
    bool in_use = false;  // the agent took this row's energy when it last had readings
  };

  void observe_stall(const Candidate& c, double seconds, std::optional<double> busy_cpus,
                     bool& usable);
  void log_stall(const RowKey& key, const Watch& w, bool stalled, const std::string& stand_in);

  std::vector<std::unique_ptr<EnergySource>> sources_;
  std::vector<std::unique_ptr<EnergySource>> standby_;
  std::vector<EnergySource*> all_;  // sources_ then standby_
  std::size_t chosen_count_ = 0;
  StallPolicy policy_;
  std::map<std::pair<std::string, std::string>, Counter> counters_;  // {source, reading key}
  std::map<RowKey, RowState> rows_;  // every row ever used, with its total
  std::map<RowKey, Watch> watches_;  // every watched row ever read
  std::map<std::pair<std::string, std::string>, uint64_t> errors_;
  std::map<std::pair<std::string, std::string>, uint64_t> stalls_;
  bool first_tick_ = true;
};

/// Δ of a counter that runs 0..modulus-1 (modulus 0: the full 64-bit range).
uint64_t counter_delta(uint64_t prev, uint64_t cur, uint64_t modulus);

}  // namespace wattprobe
