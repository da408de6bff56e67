#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

/// Files of JSON lines, one per UTC day, named YYYY-MM-DD.jsonl: the ledger's periods
/// (<state-dir>/ledger) and the job records (<state-dir>/jobs) both keep their lines this way.

/// Creates `dir` and proves that this user can create files in it, so a folder the agent cannot
/// write stops start-up rather than the first write. `what` names the folder in the error
/// ("the ledger folder").
Result<bool> prepare_day_folder(const std::filesystem::path& dir, std::string_view what);

/// Whether `name` is a day file's name; sets `day` (days since the epoch) when it is.
bool is_day_file(std::string_view name, int64_t* day);

/// The day file of the UTC day holding `ms`, under `dir`.
std::filesystem::path day_file_path(const std::filesystem::path& dir, int64_t ms);

struct DayFile {
  std::filesystem::path path;
  int64_t day = 0;
  uint64_t bytes = 0;
};

/// The day files under `dir`, oldest first; other names are left alone. Empty when the folder
/// cannot be listed.
std::vector<DayFile> list_day_files(const std::filesystem::path& dir);

/// What one append did: the bytes that reached the file, and why the rest did not (empty when
/// all did and were synced).
struct AppendResult {
  std::size_t written = 0;
  std::string error;
};

/// Appends `bytes` to the day file `path` in `dir` with O_APPEND, then fsyncs it, and the folder
/// too when the file is new (so its name survives a crash). Never follows a symbolic link. A
/// file that a crash left without its last newline gets one first, so only that torn line is
/// malformed. Makes the folder again if it went away under a running agent.
AppendResult append_to_day_file(const std::filesystem::path& dir, const std::filesystem::path& path,
                                std::string_view bytes);

}  // namespace wattprobe
