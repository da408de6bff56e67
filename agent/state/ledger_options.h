#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

#include "agent/base/option_table.h"

namespace wattprobe {

struct LedgerOptions {
  /// The day files go to <state_dir>/ledger/YYYY-MM-DD.jsonl (UTC days).
  std::filesystem::path state_dir;
  /// Length of the periods the lines sum, aligned to UTC (a period starts at a multiple of it
  /// since the epoch). A minute for reports; a second lets a test see lines within seconds.
  /// Divides a day, so no period spans two day files.
  std::chrono::seconds period{60};
  /// Day files whose whole day ended more than this many days ago are deleted; 0 keeps all.
  /// 400 days covers a year's report with a margin.
  unsigned retention_days = 400;
  /// Past this many bytes of day files in all, the oldest closed ones are deleted, at start, at
  /// each new day and whenever a write would pass it; 0: no cap. When today's file alone would
  /// pass it, its periods are dropped (counted, logged once a day) until the next day: the cap
  /// bounds the disk, today's file included. 1 GiB holds about a year of a node with 10
  /// workloads at the 1-minute period (a line is about 290 bytes), or two weeks of 200.
  uint64_t max_bytes = uint64_t{1} << 30;
};

/// --ledger-retention, --ledger-max-bytes, --ledger-period; the state folder is --state-dir's.
OptionTable<LedgerOptions> ledger_option_table();

}  // namespace wattprobe
