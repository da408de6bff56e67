#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/base/host_identity.h"
#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "agent/base/series_starts.h"
#include "agent/base/snapshot.h"
#include "agent/carbon/carbon.h"
#include "agent/tick/attribution.h"
#include "agent/tick/energy_meter.h"

namespace wattprobe {

/// The version this agent writes and the newest it reads; it reads every older one. The frame
/// (magic, version, length, CRC32) never changes; a payload change raises this number.
/// 1: the totals. 2: and the start time of each total (series_starts).
inline constexpr uint32_t kCheckpointFormatVersion = 2;

/// Every cumulative total the agent exports, at the end of one tick.
struct CheckpointState {
  HostIdentity host;
  int64_t written_ms = 0;  // wall clock
  std::vector<EnergyMeter::Total> node;
  AttributionTotals attribution;
  CarbonTotals carbon;
  std::vector<Carbon::BudgetState> budgets;
  /// When each total began counting (format 2); empty from a format-1 file. Written only for
  /// the totals above (the agent's own counters restart with it), read back with the labels
  /// checkpoint_families gives them.
  std::vector<SeriesStart> series_starts;
  uint32_t format_version = kCheckpointFormatVersion;  // of the file it was decoded from
};

/// Why a checkpoint file cannot be used. The reason's spelling is the `reason` label of
/// wattprobe_agent_checkpoint_errors_total.
struct CheckpointFault {
  enum class Reason {
    empty,         // zero bytes
    truncated,     // shorter than its frame says
    bad_magic,     // not a wattprobe checkpoint
    checksum,      // CRC32 mismatch: bits changed on disk
    malformed,     // checksum right, content not (trailing bytes, protobuf, a value out of range)
    newer_format,  // written by a newer wattprobe: never read, never overwritten
    foreign_host,  // written by another machine (a cloned disk image)
    read,          // the file could not be read
    write,         // a checkpoint could not be written
  };
  Reason reason = Reason::malformed;
  std::string detail;
};
std::string_view to_string(CheckpointFault::Reason reason);

/// The framed file: "WPCK", format version (u32 LE), payload length (u64 LE), CRC32 of version,
/// length and payload (u32 LE), then the payload (agent/checkpoint.proto).
std::string encode_checkpoint(const CheckpointState& state);

/// Checks the whole file before anything is handed back: frame, checksum, version, every field.
/// Never returns part of a file.
std::variant<CheckpointState, CheckpointFault> decode_checkpoint(std::string_view file);

/// The totals of the running parts, on the sampling thread. `carbon` may be null.
CheckpointState capture_totals(const EnergyMeter& meter, const Attribution& attribution,
                               const Carbon* carbon);
/// Continues every total from `state`, before the first tick.
void restore_totals(const CheckpointState& state, EnergyMeter& meter, Attribution& attribution,
                    Carbon* carbon);

/// The checkpoint files of a state folder: checkpoint.pb, the one before it as
/// checkpoint.pb.prev, and files set aside for inspection as checkpoint.pb.corrupt-<unix time>
/// or checkpoint.pb.foreign-<unix time>.
class CheckpointStore {
 public:
  CheckpointStore(std::filesystem::path dir, HostIdentity self);

  struct Loaded {
    std::optional<CheckpointState> state;  // none: start from zero
    std::filesystem::path file;            // where the state came from
    /// Set when the agent must not start: a newer format, whose state a downgrade would destroy.
    std::optional<std::string> refusal;
    std::vector<std::string> log;  // what was found on the way, one line each (files set aside)
  };
  /// The newest usable checkpoint: checkpoint.pb, else checkpoint.pb.prev. A corrupt or foreign
  /// file is moved aside, counted and named in `log`. `set_aside` false (checkpoint-dump) only
  /// reads.
  Loaded load(bool set_aside = true);

  /// Writes `file` (encode_checkpoint's bytes) atomically: a temporary file in the folder,
  /// fsync, the current file renamed to .prev, the temporary renamed over it, fsync of the folder.
  Result<bool> write(std::string_view file);

  void count(CheckpointFault::Reason reason) { ++errors_[reason]; }
  const std::map<CheckpointFault::Reason, uint64_t>& errors() const { return errors_; }
  const std::filesystem::path& dir() const { return dir_; }
  const HostIdentity& self() const { return self_; }
  std::filesystem::path current() const { return dir_ / "checkpoint.pb"; }
  std::filesystem::path previous() const { return dir_ / "checkpoint.pb.prev"; }

 private:
  /// One line for the log: where the file went.
  std::string set_aside(const std::filesystem::path& file, std::string_view why);

  std::filesystem::path dir_;
  HostIdentity self_;
  std::map<CheckpointFault::Reason, uint64_t> errors_;
};

/// Keeps the totals on disk: loads them at start, writes them every interval and once more at
/// stop, and exports how that goes (wattprobe_agent_checkpoint_*). The pipeline hands it the
/// totals it saves (capture_totals) and continues the totals it restores (restore_totals); it
/// never reaches into the parts itself. Runs on the sampling thread, so a checkpoint holds the
/// totals of exactly one tick. Returns what to log; prints nothing.
class CheckpointKeeper {
 public:
  CheckpointKeeper(CheckpointStore store, std::chrono::milliseconds interval)
      : store_(std::move(store)), interval_(interval) {}

  struct Restored {
    std::optional<CheckpointState> state;  // empty: totals start from zero
    std::vector<std::string> log;          // what happened, one line each
  };
  /// The newest usable checkpoint. An error is the reason the agent must not start (a newer
  /// format); a corrupt or foreign file is set aside, counted and logged instead.
  Result<Restored> restore();

  /// Whether an interval has passed since the last attempt. The first tick writes at once, so a
  /// folder that cannot take a checkpoint shows at start; a failed write waits for the next
  /// interval like a good one: no retry storm, no log flood.
  bool due() const;
  /// Writes `totals` now; the error (counted) says why it failed.
  Result<bool> write(CheckpointState totals);

  void append_families(std::vector<Family>& out) const;
  const CheckpointStore& store() const { return store_; }

 private:
  CheckpointStore store_;
  std::chrono::milliseconds interval_;
  std::optional<std::chrono::steady_clock::time_point> last_attempt_;
  double last_success_s_ = 0;
  double last_duration_s_ = 0;
  uint64_t last_bytes_ = 0;
};

/// The totals in `state` as the /metrics families they continue (for `checkpoint-dump`).
std::vector<Family> checkpoint_families(const CheckpointState& state);

}  // namespace wattprobe
