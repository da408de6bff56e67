#pragma once

#include <string>
#include <string_view>

#include "agent/base/host_paths.h"

namespace wattprobe {

/// Which machine this is, or wrote a checkpoint, or a record. The machine id is the stable identity
/// (systemd's machine-id(5): set once per installation, regenerated when an image is cloned
/// properly); the host name is kept for messages and is the identity only where no machine id is
/// readable.
struct HostIdentity {
  std::string machine_id;  // 32 lowercase hex digits, or empty
  std::string hostname;

  bool operator==(const HostIdentity&) const = default;
};

/// machine id from <procfs root>/etc/machine-id (the folder given as --procfs-root holds the
/// host's /, as in the container and the DaemonSet), host name from gethostname(2).
HostIdentity read_host_identity(const HostPaths& paths);

/// Whether a checkpoint written by `writer` belongs to `self`: machine ids are compared when both
/// have one (a renamed host keeps its totals), host names otherwise.
bool same_host(const HostIdentity& self, const HostIdentity& writer);

/// systemd's machine-id(5) form: 32 lowercase hex digits.
bool valid_machine_id(std::string_view id);

}  // namespace wattprobe
