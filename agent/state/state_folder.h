#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>

#include "agent/base/result.h"

namespace wattprobe {

/// Who must be able to write the state folder once `run` has dropped its privileges.
struct StateOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name;  // for messages
};

/// Makes `dir` ready for the checkpoint, the ledger and the remote-write queue, before the agent
/// drops to `owner` (nullopt: it stays who it is):
///  - creates it, mode 0700, when missing;
///  - refuses (unsupported) a folder that is group- or world-writable, or owned by anyone but
///    root, the agent's own user or `owner`: whoever can write it could swap the checkpoint or
///    plant a link where the agent writes;
///  - refuses a folder below one that `owner` cannot pass through (a 0700 folder of root's);
///  - started as root, hands a root-owned folder and the files wattprobe wrote in it to `owner`
///    (and, in a folder `owner` already owns, what a run as root left there: an `otlp` queue),
///    links included but never followed; a folder holding anything wattprobe does not write is
///    refused instead, so a mistaken --state-dir=/var/lib does not give a system folder away.
/// Returns one line for the log, e.g. "state folder /var/lib/wattprobe: owner wattprobe, mode
/// 0700 (handed from root to wattprobe)".
/// A symbolic link in place of the folder is refused, never followed. Every refusal comes
/// before the first change, so a refused start leaves the folder and its owner as they were.
Result<std::string> prepare_state_folder(const std::filesystem::path& dir,
                                         const std::optional<StateOwner>& owner);

/// prepare_state_folder's refusals without its changes (nothing created or chowned): `run` checks
/// first, builds its pipeline, and prepares the folder only once nothing else can refuse.
Result<std::string> check_state_folder(const std::filesystem::path& dir,
                                       const std::optional<StateOwner>& owner);

/// Makes the --guest-energy-dir folder writable by `owner` before the agent drops to it: creates
/// it (0755, so hypervisors and virtiofsd can read the VMs' folders) when missing; refuses a
/// folder that is group- or world-writable (a guest with a writable share could then plant
/// what the host writes through); started as root, hands a root-owned folder and the VM folders
/// a run as root left in it (holding only energy.json and its temporary) to `owner`, links never
/// followed. Anything else in a root-owned folder is refused, as for the state folder. Returns
/// one line for the log.
Result<std::string> prepare_guest_energy_folder(const std::filesystem::path& dir,
                                                const std::optional<StateOwner>& owner);

}  // namespace wattprobe
