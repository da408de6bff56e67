#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/base/sink.h"
#include "collectors/units/unit_reader.h"
#include "collectors/units/unit_spec.h"
#include "collectors/units/unit_window.h"

namespace wattprobe {

/// The per-unit figures (docs/metrics.md "Per unit of work"): after every snapshot, each unit's
/// reader is asked for a read, and the read, once answered, is paired with that snapshot's host
/// energy and grams of the workloads the unit's glob matches, over --unit-window. Its families
/// join the next snapshot that follows an answer.
class UnitsSink : public SnapshotSink {
 public:
  explicit UnitsSink(UnitOptions options, UnitReaderOptions reader = {},
                     UnitSteadiness steadiness = {});
  ~UnitsSink() override;

  Result<bool> start(const SinkContext& context) override;
  void on_snapshot(const SnapshotPtr& snapshot) override;
  void append_families(std::vector<Family>& out) const override;
  void begin_stop() override;

  /// on_snapshot at a given steady time, without asking for the next read (tests).
  void observe(const Snapshot& snapshot, int64_t steady_ms);
  UnitReader& reader(std::size_t i) { return *units_[i].reader; }

 private:
  struct Totals {
    double joules = 0;             // host energy
    double grams = 0;              // operational + embodied
    double shared_gpu_joules = 0;  // GPU energy split on a GPU several processes use
  };
  struct Unit {
    Unit(std::unique_ptr<UnitReader> r, UnitWindow w) : reader(std::move(r)), window(w) {}
    std::unique_ptr<UnitReader> reader;
    UnitWindow window;
    /// Each matched workload's totals at the last snapshot (key: its labels).
    std::map<std::string, Totals> last;
    Totals sum;                    // the matched workloads' rises, summed
    std::optional<Labels> labels;  // identity labels, once a workload matched
    uint64_t resets_seen = 0, reads_seen = 0;
    /// Each read asked for and not answered yet: the snapshot it followed (time and totals).
    std::map<uint64_t, UnitPoint> asked;
    std::string failing_logged;
    std::optional<bool> stable_logged;
    UnitReading reading;
    UnitFigures figures;
  };

  void log(const std::string& line) const { log_(line); }
  /// Reads asked for and not answered that are remembered: a hung service answers none.
  static constexpr std::size_t kMaxAsked = 64;

  UnitOptions options_;
  std::vector<Unit> units_;
  std::function<void(const std::string&)> log_ = [](const std::string&) {};
  mutable std::mutex mu_;  // units_' readings and figures, against append_families
};

/// `wattprobe doctor`'s lines for the [unit.NAME] sections: each counter read once, here and
/// now, with what was found or why it failed. Empty without a unit.
std::string units_doctor_report(const UnitOptions& options);

}  // namespace wattprobe
