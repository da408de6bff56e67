#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/result.h"
#include "collectors/cpu/cpu_accounting.h"

namespace wattprobe {

/// What the agent keeps once BPF is loaded and counters are open.
struct PrivilegePlan {
  std::vector<int> keep_caps;  // CAP_* numbers from <linux/capability.h>
  std::string user;            // name or numeric uid; empty = stay the current user
};

/// Why a source needs a capability; `doctor` prints this table and packaging/README.md mirrors it.
struct CapabilityUse {
  std::string_view source;  // a --sources value, or "bpf" for the eBPF accounting
  int capability;
  std::string_view why;
};

/// Every capability the eBPF accounting or any source can need after start-up, from the source
/// table. A source with none (model, nvml, procfs accounting) reads world-readable files.
std::vector<CapabilityUse> capability_table();

/// The capabilities to keep for these sources (and the eBPF accounting when `bpf`), sorted and
/// without duplicates. Unknown source names add nothing.
std::vector<int> capabilities_needed(const std::vector<std::string>& sources, bool bpf);

/// A user the agent can switch to.
struct UserIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;
  bool in_passwd = false;  // a bare uid with no passwd line takes gid = uid, no extra groups
};

/// `user` (a name, or a numeric uid) from the passwd database; a number with no passwd line is
/// still accepted. Absent when a name is not there.
Result<UserIdentity> lookup_user(const std::string& user);

/// The user `run` switches to when --user is not given. Started as root: the `wattprobe` system
/// account the package creates, or `nobody` where there is none. Started as any other user
/// (systemd's DynamicUser=, a container's runAsUser): empty, the agent already is unprivileged.
std::string default_run_user();

/// Who `run` would run as after start-up, and why, for `run` and `doctor`.
struct RunUser {
  std::string user;  // empty: stays the user it was started as
  std::string why;
  /// Started as root with no --user and no `wattprobe` account: `nobody` is shared with other
  /// processes (any of them could plant a link in the state folder or forge ledger lines), so
  /// `run` refuses rather than keep its state as nobody; `why` says how to create the account.
  bool refused = false;
};
/// `given` is --user (empty when not given).
RunUser choose_run_user(const std::string& given);

/// Whether `attempt` still succeeds with `caps` out of the effective set, which is restored
/// afterwards (they stay permitted meanwhile, so this is undoable, unlike the drop). Measures
/// what the running kernel really checks, e.g. whether map reads need CAP_BPF after load (they
/// do before Linux 6.5 with unprivileged_bpf_disabled set).
Result<bool> works_without(const std::vector<int>& caps, const std::function<bool()>& attempt);

/// Whether this accounting's reads need CAP_BPF once loaded: a trial read with CAP_BPF (and
/// CAP_SYS_ADMIN, which passes the same kernel check) lowered fails. False for the /proc
/// accounting. Must run before any thread starts, as works_without.
bool accounting_needs_cap_bpf(const CpuAccounting& accounting);

/// For the /proc accounting after the drop: a warning line when `paths`' /proc lets this process
/// read its own stat but not PID 1's, as a /proc mounted with hidepid=1 or 2 does for an
/// unprivileged user; every other user's CPU time would then go unattributed. Nullopt otherwise
/// (also on a fixture tree without `self`).
std::optional<std::string> hidden_processes_warning(const HostPaths& paths);

/// Drops every capability not in `plan.keep_caps` from the effective, permitted, inheritable,
/// ambient and bounding sets, sets no_new_privs, and switches to `plan.user` when given, keeping
/// the kept capabilities across the switch. Capabilities are per thread, so this must run before
/// the agent starts any thread; it refuses (unsupported) otherwise. A kept capability the process
/// never held is reported, not an error. Returns one line for the log and `doctor`, e.g.
/// "kept: cap_bpf,cap_perfmon; dropped all others; user: nobody".
Result<std::string> drop_privileges(const PrivilegePlan& plan);

/// The capability sets of a process as /proc/PID/status shows them (bit N = capability N).
struct CapabilitySets {
  uint64_t inheritable = 0;
  uint64_t permitted = 0;
  uint64_t effective = 0;
  uint64_t bounding = 0;
  uint64_t ambient = 0;
};

/// Parses the Cap* lines of a /proc/PID/status text; a missing or non-hex line is malformed.
Result<CapabilitySets> parse_capability_sets(std::string_view status_text,
                                             const std::filesystem::path& path);

/// read_text + parse_capability_sets, for the agent's own or another process's status file.
Result<CapabilitySets> read_capability_sets(const std::filesystem::path& status_path);

/// "cap_bpf,cap_perfmon", "none", or "all" when every capability the kernel knows is set.
std::string capability_names(uint64_t mask);

/// "cap_bpf" for CAP_BPF; "cap_N" for a number this build has no name for.
std::string capability_name(int cap);

/// For `doctor`: the agent's own effective and bounding sets by name, read from its own
/// /proc/self/status, e.g. "effective: cap_bpf,cap_perfmon; bounding: cap_bpf,cap_perfmon".
std::string current_capabilities();

}  // namespace wattprobe
