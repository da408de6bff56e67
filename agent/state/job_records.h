#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/ended_workload.h"
#include "agent/base/result.h"
#include "agent/base/sink.h"
#include "agent/state/job_record_options.h"

namespace wattprobe {

/// The job records' line format (docs/job-records.md); a reader refuses lines of a newer version.
inline constexpr int kJobRecordSchemaVersion = 1;

/// One job record as a JSON line, with its newline.
std::string job_record_line(const EndedWorkload& job);

/// One line read back, or why not (the field and the value). The reader beside its writer.
Result<EndedWorkload> parse_job_record(std::string_view line);

struct JobRecordsRead {
  std::vector<EndedWorkload> jobs;    // in the files' order: oldest end first
  std::vector<std::string> warnings;  // "file:line: what is wrong", for lines skipped
  uint64_t skipped = 0;
};

/// The records under <state_dir>/jobs of the jobs that ended in [since_ms, until_ms).
JobRecordsRead read_job_records(const std::filesystem::path& state_dir, int64_t since_ms,
                                int64_t until_ms);

/// The units a [unit.NAME] section counted for a job: only a section whose `workload` is the
/// job's name exactly, since units a glob counted over several workloads were no one job's
/// alone. From the section's count when this tick-by-tick reader first saw it (at the job's
/// start or the agent's) to its count on the tick the job ended; a later run of the name starts
/// again from the count then. Fed each tick's families after the units sink's.
class JobUnits {
 public:
  void on_tick(const std::vector<Family>& families, std::vector<EndedWorkload>* ended);

 private:
  std::map<std::pair<std::string, std::string>, double> first_;  // (workload, unit) → count
};

/// Writes a job record for every workload a snapshot says ended (Snapshot::ended), to
/// <state_dir>/jobs/YYYY-MM-DD.jsonl by the UTC day it ended: O_APPEND, one write per tick, then
/// fsync, on the sampling thread (ends are rare; a tick with none costs nothing). Past
/// max_bytes, the oldest day files are deleted, and then the oldest lines of the last, and the
/// records they held counted as dropped (logged the first time).
class JobRecordWriter : public SnapshotSink {
 public:
  explicit JobRecordWriter(JobRecordOptions options);

  Result<bool> start(const SinkContext& context) override;
  void on_snapshot(const SnapshotPtr& snapshot) override;
  void append_families(std::vector<Family>& out) const override;

  uint64_t written() const { return written_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t errors() const { return errors_; }

 private:
  /// Drops the oldest records until `more` bytes fit under the cap; false when they cannot.
  bool make_room(uint64_t more);
  void fail(const std::string& what);

  JobRecordOptions options_;
  std::filesystem::path dir_;
  SinkContext context_;
  uint64_t disk_bytes_ = 0;  // of the day files, as of the last listing plus our writes since
  uint64_t written_ = 0;
  uint64_t dropped_ = 0;
  uint64_t errors_ = 0;
  bool drop_logged_ = false;
};

}  // namespace wattprobe
