#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// When a counter that does not move counts as stalled (README "Stalled counters"). The unit of
/// evidence is a tick in which the host's CPUs were busy: a working energy counter cannot stand
/// still through one, because busy cores draw power and the hardware updates RAPL about every
/// millisecond. A tick with idle CPUs is no evidence either way (a power plane may legitimately
/// sit near 0 W when nothing runs), so it neither adds to the count nor resets it; only a change
/// of the counter resets it.
struct StallPolicy {
  /// Busy ticks without a change before the counter is called stalled...
  int min_ticks = 3;
  /// ...and the seconds those ticks must cover, so a short --interval does not shrink the
  /// evidence to a moment a hiccup (a frozen VM, a paused writer) could explain.
  double min_busy_seconds = 5.0;
  /// A tick is busy when the host's CPUs ran, on average, at least this many CPUs' worth of
  /// work: half a core at full load draws watts above idle on any CPU made so far.
  double busy_cpus = 0.5;

  /// The policy of the start-up check (`doctor`, `run`): one window of CPU burn of its own, long
  /// against RAPL's ~1 ms update interval, in which the counter must move.
  static StallPolicy start_up() { return {1, 0.0, 0.5}; }
};

/// The stalled state of one counter (or of a row that sums several), independent of what the
/// counter measures. Feed it every tick; it reports the two transitions once each.
class StallDetector {
 public:
  enum class Change { none, stalled, recovered };

  explicit StallDetector(StallPolicy policy = {}) : policy_(policy) {}

  /// One tick: whether the counter moved, the tick's length, and how many CPUs the host kept
  /// busy on average over it (nullopt: unknown, which is no evidence).
  Change observe(bool advanced, double seconds, std::optional<double> busy_cpus);
  /// Starts stalled on evidence gathered elsewhere (the start-up check). Returns `stalled` the
  /// first time.
  Change mark_stalled();

  bool stalled() const { return stalled_; }
  /// Evidence gathered since the counter last moved.
  int busy_ticks() const { return busy_ticks_; }
  double busy_seconds() const { return busy_seconds_; }
  const StallPolicy& policy() const { return policy_; }

 private:
  StallPolicy policy_;
  bool stalled_ = false;
  int busy_ticks_ = 0;
  double busy_seconds_ = 0;
};

/// Whether a counter of this domain must move while the CPUs are busy: package, core, dram and
/// psys do on every RAPL implementation. uncore and gpu (graphics power planes) and platform
/// meters (often updated by a BMC every second or more) can legitimately stand still, so they
/// are never called stalled.
bool counter_must_advance(std::string_view domain);

/// One (domain, socket) of a source whose counters the start-up check watched.
struct CheckedCounter {
  std::string domain;
  int socket = -1;
  std::string keys;  // the readings' keys, comma-separated: "intel-rapl:0", "energy-psys/cpu0"
  uint64_t raw = 0;  // the value it read (the first reading's, for a row of several)
  bool stalled = false;
};

struct SourceCheck {
  std::vector<CheckedCounter> counters;  // watched counters only, in reading order
  /// Every watched counter is stalled (and there is at least one): nothing of it measures.
  bool all_stalled() const;
  /// "package socket 0 (intel-rapl:0) stayed at 123", ... for the stalled ones.
  std::vector<std::string> stalled_descriptions() const;
};

/// A counter the start-up check found stalled, of a source `run` still uses: the meter starts
/// it stalled.
struct StalledAtStart {
  std::string source, domain;
  int socket = -1;
  std::string keys;
};

/// What happened between the two reads of the start-up check.
struct StallEvidence {
  double seconds = 0;
  double busy_cpus = 0;  // CPUs' worth of work the host was seen doing
};

/// Keeps the calling thread on a CPU until it has used `cpu_time` of CPU time (or `limit` has
/// passed on a host too loaded to give it that), and says how busy the host was meanwhile: the
/// larger of this thread's share and the host's busy CPUs in `paths`' /proc/stat, since on a
/// loaded host the burst gets less than a CPU precisely because the others are busy.
StallEvidence cpu_burst(const HostPaths& paths,
                        std::chrono::milliseconds cpu_time = std::chrono::milliseconds(200),
                        std::chrono::milliseconds limit = std::chrono::milliseconds(1000));

/// The start-up check: samples every source, runs `between` (cpu_burst in production), samples
/// again, and says for each source which of its watched counters did not move. A counter whose
/// read failed in either sample is left out (an error, not a stall). `between` is not run when no
/// source has a counter to watch.
std::vector<SourceCheck> check_counters_advance(const std::vector<EnergySource*>& sources,
                                                const std::function<StallEvidence()>& between);

}  // namespace wattprobe
