#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "agent/base/host_paths.h"

namespace wattprobe::testing {

/// Writes `contents` to `target` atomically (write a sibling, keep the target's mode, rename),
/// creating parent folders, so a reader never sees a half-written file while a driver rewrites it.
void write_file_atomically(const std::filesystem::path& target, std::string_view contents);

/// Rewrites an existing `target` in place, keeping its inode, as the kernel updates a sysfs
/// attribute: a reader holding the file open (the agent holds energy_uj) sees the new value on
/// its next read from offset 0. A missing target is written atomically instead. Contents of the
/// same length as before replace it in one write, so a concurrent reader never sees a mix.
void write_file_in_place(const std::filesystem::path& target, std::string_view contents);

/// A temporary folder that stands in for the host's / (sys, proc, dev, var/log/pods), removed
/// when the object goes. Files are written the way the kernel shows them: the caller gives exact
/// names and contents (with the trailing newline sysfs prints).
class TempTree {
 public:
  TempTree();
  ~TempTree();
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  const std::filesystem::path& root() const { return root_; }
  /// HostPaths with every root pointing here.
  HostPaths paths() const;

  /// Writes `contents` to root/rel atomically (write then rename), creating parent folders, so a
  /// reader never sees a half-written file even while a driver thread rewrites it.
  void write(std::string_view rel, std::string_view contents) const;
  /// Writes value + "\n", as sysfs prints integers.
  void write_u64(std::string_view rel, uint64_t value) const;
  void mkdir(std::string_view rel) const;
  void symlink(std::string_view target, std::string_view rel) const;
  void remove(std::string_view rel) const;
  void chmod(std::string_view rel, std::filesystem::perms perms) const;
  std::filesystem::path path(std::string_view rel) const;

 private:
  std::filesystem::path root_;
};

}  // namespace wattprobe::testing
