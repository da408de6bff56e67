#include "agent/base/held_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace wattprobe {

Result<HeldFile> HeldFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error_from_errno(errno, path.string(), "open");
  HeldFile out;
  out.path_ = path;
  out.fd_ = std::shared_ptr<const int>(new int(fd), [](const int* p) {
    ::close(*p);
    delete p;
  });
  return out;
}

Result<std::string> HeldFile::read(std::size_t max_bytes) const {
  if (!fd_) return Error{ErrorKind::absent, path_.string(), "not open"};
  // The kernel answers ENODEV once a device's attribute is removed (a chip unbound); a plain
  // file removed or replaced under the name has no link left, and would read stale forever.
  struct stat st {};
  if (::fstat(*fd_, &st) == 0 && st.st_nlink == 0) {
    return Error{ErrorKind::absent, path_.string(), "removed since it was opened"};
  }
  std::string out;
  char buf[4096];
  for (;;) {
    // pread, not read: the offset stays 0 for the next tick, and copies sharing the descriptor
    // do not move each other's position.
    ssize_t n = ::pread(*fd_, buf, sizeof buf, static_cast<off_t>(out.size()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return error_from_errno(errno, path_.string(), "read");
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      return Error{ErrorKind::malformed, path_.string(),
                   "larger than " + std::to_string(max_bytes) + " bytes"};
    }
  }
  return out;
}

}  // namespace wattprobe
