#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include "agent/base/result.h"

namespace wattprobe {

/// A kernel attribute or secret file opened once and read again from offset 0 on every call.
/// sysfs regenerates an attribute's text on each read at offset 0, so a held descriptor sees
/// fresh values; holding it lets the agent keep reading a root-only file (powercap energy_uj,
/// amd_energy inputs) after it has dropped to an unprivileged user and its capabilities, since
/// the kernel checks permission when a file is opened, not when it is read. Copies share the
/// descriptor, which closes with the last of them.
class HeldFile {
 public:
  HeldFile() = default;
  /// Opens `path` read-only; the error names the path and says why (permission, absent, ...).
  static Result<HeldFile> open(const std::filesystem::path& path);

  bool is_open() const { return fd_ != nullptr; }
  const std::filesystem::path& path() const { return path_; }
  /// The whole text from offset 0, at most `max_bytes` (larger is malformed, as read_text). A
  /// file removed or replaced since it was opened is absent, never read stale.
  Result<std::string> read(std::size_t max_bytes = 65536) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<const int> fd_;
};

}  // namespace wattprobe
