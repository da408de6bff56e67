#pragma once

#include <cstdint>
#include <filesystem>

#include "agent/base/option_table.h"

namespace wattprobe {

/// Where the records of ended workloads (batch jobs) go: their own files under
/// <state_dir>/jobs/, apart from the ledger, so --ledger-max-bytes never deletes them.
struct JobRecordOptions {
  std::filesystem::path state_dir;  // follows --state-dir
  /// --job-records-max-bytes: past it the oldest records are dropped (and counted); 0: no cap.
  uint64_t max_bytes = uint64_t{64} << 20;
};

/// --job-records-max-bytes; the state folder is --state-dir's.
OptionTable<JobRecordOptions> job_record_option_table();

}  // namespace wattprobe
