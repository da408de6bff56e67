#include "agent/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <optional>

#include "agent/base/text_file.h"
#include "collectors/registry.h"

namespace wattprobe {
namespace {

// Names as capabilities(7) and /proc/PID/status tools (capsh) print them, indexed by number.
constexpr std::array<std::string_view, 41> kCapabilityNames = {"cap_chown",
                                                               "cap_dac_override",
                                                               "cap_dac_read_search",
                                                               "cap_fowner",
                                                               "cap_fsetid",
                                                               "cap_kill",
                                                               "cap_setgid",
                                                               "cap_setuid",
                                                               "cap_setpcap",
                                                               "cap_linux_immutable",
                                                               "cap_net_bind_service",
                                                               "cap_net_broadcast",
                                                               "cap_net_admin",
                                                               "cap_net_raw",
                                                               "cap_ipc_lock",
                                                               "cap_ipc_owner",
                                                               "cap_sys_module",
                                                               "cap_sys_rawio",
                                                               "cap_sys_chroot",
                                                               "cap_sys_ptrace",
                                                               "cap_sys_pacct",
                                                               "cap_sys_admin",
                                                               "cap_sys_boot",
                                                               "cap_sys_nice",
                                                               "cap_sys_resource",
                                                               "cap_sys_time",
                                                               "cap_sys_tty_config",
                                                               "cap_mknod",
                                                               "cap_lease",
                                                               "cap_audit_write",
                                                               "cap_audit_control",
                                                               "cap_setfcap",
                                                               "cap_mac_override",
                                                               "cap_mac_admin",
                                                               "cap_syslog",
                                                               "cap_wake_alarm",
                                                               "cap_block_suspend",
                                                               "cap_audit_read",
                                                               "cap_perfmon",
                                                               "cap_bpf",
                                                               "cap_checkpoint_restore"};

// The /proc accounting, the model and NVML need nothing after start-up: /proc/PID/{stat,cgroup,
// comm}, cgroupfs, /var/log/pods and /dev/nvidia* are world-readable, so CAP_SYS_PTRACE is not
// kept. Resolving a cgroup id with name_to_handle_at needs no capability either (only
// open_by_handle_at does). CAP_SYS_RESOURCE (memlock before 5.11) and CAP_PERFMON (tracing
// programs and their links) are only checked while loading and attaching. The eBPF accounting
// is not an energy source, so its need is written here; a source's would be in its line of the
// source table (collectors/registry.cc), where every line is empty since each source reads
// descriptors it opened before the drop.
constexpr std::array<CapabilityUse, 1> kBpfNeeds = {{
    {"bpf", CAP_BPF,
     "map reads after load: kernels before 6.5 check it on every bpf() call when "
     "unprivileged_bpf_disabled is set (Debian's default); `run` keeps it only where a trial "
     "read without it fails"},
}};

constexpr uint64_t bit(int cap) { return uint64_t{1} << cap; }

// The kernel's last capability, probed rather than read from /proc/sys so it works where /proc
// is absent; PR_CAPBSET_READ fails with EINVAL past the last one.
int last_cap() {
  int cap = CAP_LAST_CAP;
  while (cap < 63 && prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0) ++cap;
  while (cap > 0 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) --cap;
  return cap;
}

struct ThreadCaps {
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
};

Result<ThreadCaps> get_caps() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  if (syscall(SYS_capget, &header, data.data()) != 0) {
    return error_from_errno(errno, "", "capget");
  }
  auto join = [](uint32_t lo, uint32_t hi) { return uint64_t{lo} | (uint64_t{hi} << 32); };
  return ThreadCaps{join(data[0].effective, data[1].effective),
                    join(data[0].permitted, data[1].permitted),
                    join(data[0].inheritable, data[1].inheritable)};
}

std::optional<Error> set_caps(const ThreadCaps& caps) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  std::array<__user_cap_data_struct, 2> data{};
  data[0] = {static_cast<uint32_t>(caps.effective), static_cast<uint32_t>(caps.permitted),
             static_cast<uint32_t>(caps.inheritable)};
  data[1] = {static_cast<uint32_t>(caps.effective >> 32),
             static_cast<uint32_t>(caps.permitted >> 32),
             static_cast<uint32_t>(caps.inheritable >> 32)};
  if (syscall(SYS_capset, &header, data.data()) != 0) {
    return error_from_errno(errno, "", "capset");
  }
  return std::nullopt;
}

std::optional<uint32_t> parse_id(std::string_view text) {
  uint32_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

Result<UserIdentity> resolve_user(const std::string& user) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  int err = getpwnam_r(user.c_str(), &entry, buffer.data(), buffer.size(), &found);
  if (found == nullptr) {
    if (auto id = parse_id(user)) {
      err = getpwuid_r(*id, &entry, buffer.data(), buffer.size(), &found);
    }
  }
  if (found != nullptr) return UserIdentity{found->pw_uid, found->pw_gid, found->pw_name, true};
  if (auto id = parse_id(user)) return UserIdentity{*id, *id, user, false};
  return Error{ErrorKind::absent, "",
               "user " + quote_for_error(user) +
                   " is not in the passwd "
                   "database" +
                   (err != 0 ? " (lookup failed)" : "")};
}

std::string user_name(uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  return found != nullptr ? std::string(found->pw_name) : "uid " + std::to_string(uid);
}

std::optional<Error> switch_user(const UserIdentity& to) {
  auto failed = [&](std::string_view what) {
    Error e = error_from_errno(errno, "", what);
    e.detail = "switching to user " + to.name + ": " + e.detail;
    return e;
  };
  // Without KEEPCAPS, leaving uid 0 empties the permitted set and nothing could be re-raised.
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return failed("prctl(PR_SET_KEEPCAPS)");
  // Supplementary groups come from /etc/group so a udev rule's group (for energy_uj) applies.
  int groups_rc = to.in_passwd ? initgroups(to.name.c_str(), to.gid) : setgroups(0, nullptr);
  if (groups_rc != 0) return failed("setgroups");
  if (setresgid(to.gid, to.gid, to.gid) != 0) return failed("setresgid");
  if (setresuid(to.uid, to.uid, to.uid) != 0) return failed("setresuid");
  prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  return std::nullopt;
}

std::optional<uint64_t> count_threads_of_self() {
  auto status = read_text("/proc/self/status");
  if (!status.ok()) return std::nullopt;
  std::string_view text = *status;
  auto at = text.find("\nThreads:");
  if (at == std::string_view::npos) return std::nullopt;
  text.remove_prefix(at + 9);
  text = text.substr(0, text.find('\n'));
  auto n = parse_u64(text, "/proc/self/status");
  if (!n.ok()) return std::nullopt;
  return *n;
}

}  // namespace

std::vector<CapabilityUse> capability_table() {
  std::vector<CapabilityUse> out(kBpfNeeds.begin(), kBpfNeeds.end());
  for (const SourceEntry& entry : source_registry()) {
    for (const CapabilityNeed& need : entry.capabilities) {
      out.push_back({entry.name, need.capability, need.why});
    }
  }
  return out;
}

Result<UserIdentity> lookup_user(const std::string& user) { return resolve_user(user); }

std::string default_run_user() {
  if (geteuid() != 0) return "";
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  getpwnam_r("wattprobe", &entry, buffer.data(), buffer.size(), &found);
  return found != nullptr ? "wattprobe" : "nobody";
}

RunUser choose_run_user(const std::string& given) {
  if (!given.empty()) return RunUser{given, "--user " + given, false};
  const std::string user = default_run_user();
  if (user.empty()) {
    return RunUser{"",
                   "not started as root, so it stays the user it was started as (systemd's "
                   "DynamicUser=, a container's runAsUser)",
                   false};
  }
  if (user == "wattprobe") return RunUser{user, "the wattprobe account (the package's)", false};
  return RunUser{"nobody",
                 "no wattprobe account, and nobody is shared with other processes, any of which "
                 "could plant a link in the state folder or forge the ledger lines report sums; "
                 "create the account (useradd --system --user-group --no-create-home "
                 "--home-dir /nonexistent --shell /usr/sbin/nologin wattprobe), run it from the "
                 "packaged systemd unit (DynamicUser=), or pass --user nobody to accept sharing",
                 true};
}

Result<bool> works_without(const std::vector<int>& caps, const std::function<bool()>& attempt) {
  auto held = get_caps();
  if (!held.ok()) return held.error();
  ThreadCaps lowered = *held;
  for (int cap : caps) lowered.effective &= ~bit(cap);
  if (lowered.effective == held->effective) return attempt();
  if (auto err = set_caps(lowered)) return *err;
  const bool worked = attempt();
  if (auto err = set_caps(*held)) return *err;
  return worked;
}

bool accounting_needs_cap_bpf(const CpuAccounting& accounting) {
  if (accounting.mode() == "procfs") return false;
  auto without = works_without({CAP_BPF, CAP_SYS_ADMIN},
                               [&accounting] { return accounting.kernel_reads_allowed(); });
  return !without.ok() || !*without;
}

std::optional<std::string> hidden_processes_warning(const HostPaths& paths) {
  if (!read_text(paths.proc("self/stat")).ok()) return std::nullopt;
  auto first = read_text(paths.proc("1/stat"));
  if (first.ok() ||
      (first.error().kind != ErrorKind::absent && first.error().kind != ErrorKind::permission)) {
    return std::nullopt;
  }
  return "warning: " + paths.proc().string() + " hides other users' processes from " +
         user_name(geteuid()) + " (" + first.error().message() +
         "; mounted with hidepid=1 or 2?): the /proc accounting sees only its own, and the rest "
         "of the CPU's energy goes unattributed; use --accounting=bpf, mount /proc with gid= of a "
         "group of this user, or --user root";
}

std::vector<int> capabilities_needed(const std::vector<std::string>& sources, bool bpf) {
  std::vector<int> caps;
  for (const auto& need : capability_table()) {
    bool wanted = need.source == "bpf"
                      ? bpf
                      : std::find(sources.begin(), sources.end(), need.source) != sources.end();
    if (wanted) caps.push_back(need.capability);
  }
  std::sort(caps.begin(), caps.end());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  return caps;
}

std::string capability_name(int cap) {
  if (cap >= 0 && static_cast<std::size_t>(cap) < kCapabilityNames.size()) {
    return std::string(kCapabilityNames[cap]);
  }
  return "cap_" + std::to_string(cap);
}

std::string capability_names(uint64_t mask) {
  if (mask == 0) return "none";
  int last = last_cap();
  uint64_t all = last >= 63 ? ~uint64_t{0} : bit(last + 1) - 1;
  if ((mask & all) == all) return "all";
  std::string out;
  for (int cap = 0; cap < 64; ++cap) {
    if ((mask & bit(cap)) == 0) continue;
    if (!out.empty()) out += ',';
    out += capability_name(cap);
  }
  return out;
}

Result<CapabilitySets> parse_capability_sets(std::string_view status_text,
                                             const std::filesystem::path& path) {
  CapabilitySets sets;
  const std::pair<std::string_view, uint64_t*> fields[] = {{"CapInh:", &sets.inheritable},
                                                           {"CapPrm:", &sets.permitted},
                                                           {"CapEff:", &sets.effective},
                                                           {"CapBnd:", &sets.bounding},
                                                           {"CapAmb:", &sets.ambient}};
  for (auto [key, out] : fields) {
    std::size_t at = status_text.starts_with(key) ? 0 : status_text.find("\n" + std::string(key));
    if (at == std::string_view::npos) {
      return Error{ErrorKind::malformed, path.string(), std::string(key) + " line missing"};
    }
    std::string_view value = status_text.substr(at + (at == 0 ? 0 : 1) + key.size());
    value = trim(value.substr(0, value.find('\n')));
    uint64_t mask = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), mask, 16);
    if (value.empty() || ec != std::errc() || end != value.data() + value.size()) {
      return Error{ErrorKind::malformed, path.string(),
                   std::string(key) + " is not a hex mask: " + quote_for_error(value)};
    }
    *out = mask;
  }
  return sets;
}

Result<CapabilitySets> read_capability_sets(const std::filesystem::path& status_path) {
  auto text = read_text(status_path);
  if (!text.ok()) return text.error();
  return parse_capability_sets(*text, status_path);
}

std::string current_capabilities() {
  // The agent's own procfs, not the host's (HostPaths may point at a fake or /host tree).
  auto sets = read_capability_sets("/proc/self/status");
  if (!sets.ok()) return "unknown (" + sets.error().message() + ")";
  return "effective: " + capability_names(sets->effective) +
         "; bounding: " + capability_names(sets->bounding);
}

Result<std::string> drop_privileges(const PrivilegePlan& plan) {
  const int last = last_cap();
  uint64_t keep = 0;
  for (int cap : plan.keep_caps) {
    if (cap < 0 || cap > last) {
      return Error{ErrorKind::unsupported, "",
                   "capability " + std::to_string(cap) + " is not known to this kernel (last is " +
                       std::to_string(last) + ")"};
    }
    keep |= bit(cap);
  }
  // capset and PR_CAPBSET_DROP change the calling thread only; a thread started earlier would
  // keep every capability and the drop would be a pretence.
  if (auto threads = count_threads_of_self(); threads && *threads > 1) {
    return Error{ErrorKind::unsupported, "/proc/self/status",
                 "privileges must be dropped before any thread starts; found " +
                     std::to_string(*threads) + " threads"};
  }
  std::optional<UserIdentity> identity;
  if (!plan.user.empty()) {
    auto resolved = resolve_user(plan.user);
    if (!resolved.ok()) return resolved.error();
    identity = std::move(*resolved);
  }

  auto held = get_caps();
  if (!held.ok()) return held.error();
  const uint64_t kept = keep & held->permitted;
  const uint64_t not_held = keep & ~held->permitted;

  // The bounding set caps what any later exec could gain; narrowing it needs CAP_SETPCAP, which
  // an agent started by systemd with a CapabilityBoundingSet already narrowed does not have.
  bool bounding_narrowed = true;
  for (int cap = 0; cap <= last; ++cap) {
    if ((keep & bit(cap)) != 0 || prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 1) continue;
    if ((held->effective & bit(CAP_SETPCAP)) == 0) {
      bounding_narrowed = false;
      break;
    }
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
      return error_from_errno(errno, "", "prctl(PR_CAPBSET_DROP, " + capability_name(cap) + ")");
    }
  }

  std::string user_part;
  if (identity && (identity->uid != geteuid() || identity->gid != getegid())) {
    if (auto err = switch_user(*identity)) return *err;
    user_part = identity->name;
  } else if (identity) {
    user_part = identity->name + " (already)";
  } else {
    user_part = user_name(geteuid()) + " (unchanged)";
  }

  if (auto err = set_caps(ThreadCaps{kept, kept, held->inheritable & keep})) return *err;
  // The agent runs no programs, so nothing it could exec deserves a capability.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    return error_from_errno(errno, "", "prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return error_from_errno(errno, "", "prctl(PR_SET_NO_NEW_PRIVS)");
  }

  auto after = get_caps();
  if (!after.ok()) return after.error();
  if (after->effective != kept || after->permitted != kept) {
    return Error{ErrorKind::transient, "",
                 "after capset the effective set is " + capability_names(after->effective) +
                     ", expected " + capability_names(kept)};
  }

  std::string line = "kept: " + capability_names(kept);
  if (not_held != 0) line += " (not held, so not kept: " + capability_names(not_held) + ")";
  line += "; dropped all others";
  if (!bounding_narrowed) line += "; bounding set left as given (no cap_setpcap)";
  line += "; user: " + user_part;
  return line;
}

}  // namespace wattprobe
