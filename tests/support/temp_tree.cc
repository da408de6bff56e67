#include "tests/support/temp_tree.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <optional>
#include <stdexcept>

namespace wattprobe::testing {

namespace fs = std::filesystem;

TempTree::TempTree() {
  std::string tmpl = (fs::temp_directory_path() / "wattprobe-tree-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  root_ = tmpl;
}

TempTree::~TempTree() {
  std::error_code ec;
  fs::remove_all(root_, ec);
}

HostPaths TempTree::paths() const {
  HostPaths p;
  p.sysfs_root = root_;
  p.procfs_root = root_;
  p.dev_root = root_;
  p.pods_log_root = root_;
  return p;
}

fs::path TempTree::path(std::string_view rel) const {
  return root_ / fs::path(rel).relative_path();
}

void write_file_atomically(const fs::path& target, std::string_view contents) {
  fs::create_directories(target.parent_path());
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  // Keep the mode a test set on the file it replaces (e.g. an unreadable energy_uj).
  std::error_code ec;
  auto st = fs::status(target, ec);
  if (!ec && fs::exists(st)) fs::permissions(tmp, st.permissions(), ec);
  fs::rename(tmp, target);
}

void write_file_in_place(const fs::path& target, std::string_view contents) {
  int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
  std::optional<fs::perms> restore;
  if (fd < 0 && errno == EACCES) {
    // A 0400 energy_uj owned by a non-root test user: writable for the moment of the write.
    std::error_code ec;
    auto perms = fs::status(target, ec).permissions();
    if (!ec) {
      fs::permissions(target, perms | fs::perms::owner_write, ec);
      if (!ec) restore = perms;
      fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    }
  }
  if (fd < 0) {
    write_file_atomically(target, contents);
    return;
  }
  bool ok =
      ::pwrite(fd, contents.data(), contents.size(), 0) == static_cast<ssize_t>(contents.size()) &&
      ::ftruncate(fd, static_cast<off_t>(contents.size())) == 0;
  ::close(fd);
  if (restore) {
    std::error_code ec;
    fs::permissions(target, *restore, ec);
  }
  if (!ok) throw std::runtime_error("cannot write " + target.string() + " in place");
}

void TempTree::write(std::string_view rel, std::string_view contents) const {
  write_file_atomically(path(rel), contents);
}

void TempTree::write_u64(std::string_view rel, uint64_t value) const {
  write(rel, std::to_string(value) + "\n");
}

void TempTree::mkdir(std::string_view rel) const { fs::create_directories(path(rel)); }

void TempTree::symlink(std::string_view target, std::string_view rel) const {
  fs::path link = path(rel);
  fs::create_directories(link.parent_path());
  fs::create_symlink(fs::path(target), link);
}

void TempTree::remove(std::string_view rel) const { fs::remove_all(path(rel)); }

void TempTree::chmod(std::string_view rel, fs::perms perms) const {
  fs::permissions(path(rel), perms);
}

}  // namespace wattprobe::testing
