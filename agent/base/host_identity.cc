#include "agent/base/host_identity.h"

#include <unistd.h>

#include "agent/base/text_file.h"

namespace wattprobe {

bool valid_machine_id(std::string_view id) {
  return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

HostIdentity read_host_identity(const HostPaths& paths) {
  HostIdentity h;
  // systemd writes "uninitialized" on a first boot that has not committed an id yet; that, an
  // empty file or anything else that is not 32 hex digits is no identity.
  if (auto id = read_text(paths.procfs_root / "etc/machine-id", 256)) {
    std::string_view v = trim(*id);
    if (valid_machine_id(v)) h.machine_id = std::string(v);
  }
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) == 0) h.hostname = name;
  return h;
}

bool same_host(const HostIdentity& self, const HostIdentity& writer) {
  if (!self.machine_id.empty() && !writer.machine_id.empty()) {
    return self.machine_id == writer.machine_id;
  }
  return self.hostname == writer.hostname;
}

}  // namespace wattprobe
