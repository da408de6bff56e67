#include "agent/base/result.h"

#include <cstring>

namespace wattprobe {

std::string_view to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::absent: return "absent";
    case ErrorKind::permission: return "permission";
    case ErrorKind::malformed: return "malformed";
    case ErrorKind::transient: return "transient";
    case ErrorKind::unsupported: return "unsupported";
  }
  return "transient";
}

std::string Error::message() const {
  std::string out;
  if (!path.empty()) out += path + ": ";
  out += to_string(kind);
  if (!detail.empty()) out += ": " + detail;
  return out;
}

Error error_from_errno(int err, std::string path, std::string_view what) {
  ErrorKind kind = ErrorKind::transient;
  switch (err) {
    case EACCES:
    case EPERM: kind = ErrorKind::permission; break;
    case ENOENT:
    case ENODEV:
    case ENXIO:
    case ENOTDIR: kind = ErrorKind::absent; break;
    case EOPNOTSUPP:
    case EINVAL:
    case EIO: kind = ErrorKind::unsupported; break;
    default: break;
  }
  return Error{kind, std::move(path), std::string(what) + ": " + std::strerror(err)};
}

}  // namespace wattprobe
