#include "agent/state/state_folder.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <string_view>
#include <vector>

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string owner_name(uid_t uid) {
  std::vector<char> buffer(16384);
  passwd entry{};
  passwd* found = nullptr;
  getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
  return found ? std::string(found->pw_name) + " (uid " + std::to_string(uid) + ")"
               : "uid " + std::to_string(uid);
}

// What the checkpoint, the ledger, the job records and the remote-write queue put in the state
// folder; anything else means --state-dir names a folder that is not wattprobe's own.
bool written_by_wattprobe(std::string_view name) {
  constexpr std::array<std::string_view, 5> kExact = {"ledger", "jobs", "remote-write", "otlp",
                                                      "lost+found"};
  for (std::string_view n : kExact)
    if (name == n) return true;
  return name.starts_with("checkpoint.pb");
}

// Hands what root owns under `dir` to the new owner, without following a link (lchown), and
// without descending into one.
std::optional<Error> hand_over(const fs::path& dir, const StateOwner& to, int depth) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& path = it->path();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return error_from_errno(errno, path.string(), "lstat");
    if (st.st_uid == 0 && ::lchown(path.c_str(), to.uid, to.gid) != 0) {
      return error_from_errno(errno, path.string(), "chown to " + to.name);
    }
    if (S_ISDIR(st.st_mode) && depth < 4) {
      if (auto err = hand_over(path, to, depth + 1)) return err;
    }
  }
  if (ec) return error_from_errno(ec.value(), dir.string(), "list");
  return std::nullopt;
}

// The first folder above `dir` that `owner` cannot pass through (no search permission for it by
// owner, primary group or others), or nullopt: a folder handed to a user who cannot reach it is
// no use. Supplementary groups are not counted, so this may refuse a path a group would open.
std::optional<std::string> unreachable_for(const fs::path& dir, const StateOwner& owner) {
  std::error_code ec;
  fs::path at = fs::absolute(dir, ec).lexically_normal();
  while (at.has_relative_path()) {
    at = at.parent_path();
    struct stat st {};
    if (::stat(at.c_str(), &st) != 0) continue;
    const bool passes = (st.st_uid == owner.uid && (st.st_mode & S_IXUSR)) ||
                        (st.st_gid == owner.gid && (st.st_mode & S_IXGRP)) ||
                        (st.st_mode & S_IXOTH);
    if (!passes) {
      return at.string() + " (mode " + octal_mode(st.st_mode) + ", owner " + owner_name(st.st_uid) +
             ")";
    }
  }
  return std::nullopt;
}

}  // namespace

namespace {

/// prepare_state_folder's checks, and with `change` its changes: every refusal comes before the
/// first change, so a refused start leaves the folder (and its owner) as it found it.
Result<std::string> state_folder(const fs::path& dir, const std::optional<StateOwner>& owner,
                                 bool change) {
  const std::string where = "state folder " + dir.string();
  std::string how;
  std::error_code ec;
  struct stat st {};
  // lstat: a link in place of the folder would send the checkpoint, the ledger and the queues
  // wherever whoever made the link chose (and the hand-over below would chown it).
  if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::error_code link_ec;
    const fs::path target = fs::read_symlink(dir, link_ec);
    return Error{ErrorKind::unsupported, "",
                 where + " is a symbolic link" +
                     (link_ec ? std::string() : " to " + target.string()) +
                     ": refusing to follow it, since whoever can change the link could point "
                     "the agent's writes elsewhere; point --state-dir at the folder itself"};
  }
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return error_from_errno(errno, dir.string(), "stat state folder");
    if (!change) {
      if (owner && owner->uid != geteuid()) {
        if (auto blocked = unreachable_for(dir, *owner)) {
          return Error{ErrorKind::unsupported, "",
                       where + " cannot be reached by " + owner->name +
                           ", the user the agent runs as after start-up: " + *blocked +
                           " lets only its owner through; refusing to start (chmod o+x that "
                           "folder, or point --state-dir elsewhere)"};
        }
      }
      return where + ": to be created";
    }
    if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
    if (ec) return Error{ErrorKind::permission, dir.parent_path().string(), ec.message()};
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return error_from_errno(errno, dir.string(), "create state folder");
    }
    if (owner && geteuid() == 0 && ::chown(dir.c_str(), owner->uid, owner->gid) != 0) {
      return error_from_errno(errno, dir.string(), "chown state folder to " + owner->name);
    }
    how = " (created)";
    if (::lstat(dir.c_str(), &st) != 0) return error_from_errno(errno, dir.string(), "stat");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error{ErrorKind::unsupported, "", where + " is not a folder"};
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{ErrorKind::unsupported, "",
                 where + " is writable by " +
                     ((st.st_mode & S_IWOTH) != 0 ? "every user" : "its group") + " (mode " +
                     octal_mode(st.st_mode) +
                     "): another user could replace the checkpoint or plant a link where the "
                     "agent writes; refusing to start (chmod 0700 " +
                     dir.string() + ")"};
  }
  const uid_t self = geteuid();
  const bool allowed_owner =
      st.st_uid == 0 || st.st_uid == self || (owner && st.st_uid == owner->uid);
  if (!allowed_owner) {
    return Error{ErrorKind::unsupported, "",
                 where + " is owned by " + owner_name(st.st_uid) +
                     ", not root or the agent's user" +
                     (owner ? " " + owner->name : std::string()) +
                     ": that user could rewrite the totals; refusing to start (chown it, or point "
                     "--state-dir at a folder of the agent's own)"};
  }
  if (owner && owner->uid != self) {
    if (auto blocked = unreachable_for(dir, *owner)) {
      return Error{ErrorKind::unsupported, "",
                   where + " cannot be reached by " + owner->name +
                       ", the user the agent runs as after start-up: " + *blocked +
                       " lets only its owner through; refusing to start (chmod o+x that folder, "
                       "or point --state-dir elsewhere)"};
    }
  }
  // wattprobe writes no links: one in the folder was planted, and following it (or handing it
  // over) would act on whatever it points at. Refused here, before anything is changed.
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_symlink(ec)) continue;
    std::error_code link_ec;
    const fs::path target = fs::read_symlink(it->path(), link_ec);
    return Error{ErrorKind::unsupported, "",
                 where + ": " + it->path().filename().string() + " is a symbolic link" +
                     (link_ec ? std::string() : " to " + target.string()) +
                     ", which wattprobe never writes: refusing to follow it or start; remove it"};
  }
  ec.clear();
  if (owner && st.st_uid == owner->uid && self == 0) {
    // The owner's folder, but a run as root (--user root, or an older wattprobe) may have left
    // root's queue or ledger in it, which the agent could not write once it drops: hand those
    // over too, and leave alone anything wattprobe does not write.
    std::vector<fs::path> root_owned;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      struct stat entry {};
      if (::lstat(it->path().c_str(), &entry) != 0) continue;
      if (entry.st_uid == 0 && written_by_wattprobe(it->path().filename().string()))
        root_owned.push_back(it->path());
    }
    if (ec) return error_from_errno(ec.value(), dir.string(), "list state folder");
    if (!change)
      return where + ": owner " + owner_name(st.st_uid) + ", mode " + octal_mode(st.st_mode);
    for (const fs::path& path : root_owned) {
      struct stat entry {};
      if (::lstat(path.c_str(), &entry) != 0) continue;
      if (S_ISDIR(entry.st_mode)) {
        if (auto err = hand_over(path, *owner, 1)) return *err;
      }
      if (::lchown(path.c_str(), owner->uid, owner->gid) != 0)
        return error_from_errno(errno, path.string(), "chown to " + owner->name);
    }
    if (!root_owned.empty()) {
      how += " (" + std::to_string(root_owned.size()) + " of root's entries handed to " +
             owner->name + ")";
    }
  }
  if (owner && st.st_uid != owner->uid && self == 0) {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (!written_by_wattprobe(name)) {
        return Error{ErrorKind::unsupported, "",
                     where + " is owned by root and holds " + name +
                         ", which wattprobe does not write: not handing a folder that is not "
                         "wattprobe's own to " +
                         owner->name +
                         "; point --state-dir at a folder of its own, or chown it to " +
                         owner->name + " yourself"};
      }
    }
    if (ec) return error_from_errno(ec.value(), dir.string(), "list state folder");
    if (!change) {
      return where + ": owner " + owner_name(st.st_uid) + ", mode " + octal_mode(st.st_mode) +
             " (to be handed to " + owner->name + ")";
    }
    if (auto err = hand_over(dir, *owner, 0)) return *err;
    if (::chown(dir.c_str(), owner->uid, owner->gid) != 0) {
      return error_from_errno(errno, dir.string(), "chown state folder to " + owner->name);
    }
    how += " (handed from root to " + owner->name + ")";
    st.st_uid = owner->uid;
  }
  return where + ": owner " + owner_name(st.st_uid) + ", mode " + octal_mode(st.st_mode) + how;
}

}  // namespace

Result<std::string> check_state_folder(const fs::path& dir,
                                       const std::optional<StateOwner>& owner) {
  return state_folder(dir, owner, false);
}

Result<std::string> prepare_state_folder(const fs::path& dir,
                                         const std::optional<StateOwner>& owner) {
  return state_folder(dir, owner, true);
}

Result<std::string> prepare_guest_energy_folder(const std::filesystem::path& dir,
                                                const std::optional<StateOwner>& owner) {
  namespace fs = std::filesystem;
  const std::string where = dir.string();
  if (::mkdir(where.c_str(), 0755) != 0 && errno != EEXIST) {
    return error_from_errno(errno, where, "create the guest energy folder");
  }
  struct stat st {};
  if (::stat(where.c_str(), &st) != 0) return error_from_errno(errno, where, "stat");
  if (!S_ISDIR(st.st_mode)) return Error{ErrorKind::unsupported, where, "is not a folder"};
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error{ErrorKind::unsupported, where,
                 "is writable by its group or by everyone: whoever can write it could plant a "
                 "link where the agent writes a VM's figures; chmod go-w it"};
  }
  std::string line = "guest energy folder " + where;
  if (!owner || st.st_uid == owner->uid) return line + ": writable by the agent";
  if (st.st_uid != 0 || ::geteuid() != 0) {
    return Error{ErrorKind::unsupported, where,
                 "is owned by uid " + std::to_string(st.st_uid) + ", not by " + owner->name +
                     " who writes it; chown it to " + owner->name};
  }
  // Root's folder: hand over only what a run as root wrote (VM folders of energy.json).
  std::error_code ec;
  std::vector<fs::path> vm_folders;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path vm = it->path();
    bool ours = it->is_directory(ec) && !it->is_symlink(ec);
    for (fs::directory_iterator f(vm, ec), fend; ours && !ec && f != fend; f.increment(ec)) {
      const std::string name = f->path().filename().string();
      ours = name == "energy.json" || name == ".energy.json.tmp";
    }
    if (!ours) {
      return Error{ErrorKind::unsupported, vm.string(),
                   "is not a VM folder wattprobe wrote; not handing " + where + " to " +
                       owner->name + ": chown it yourself, or point --guest-energy-dir elsewhere"};
    }
    vm_folders.push_back(vm);
  }
  if (ec) return error_from_errno(ec.value(), where, "list");
  for (const fs::path& vm : vm_folders) {
    for (fs::directory_iterator f(vm, ec), fend; !ec && f != fend; f.increment(ec)) {
      if (::lchown(f->path().c_str(), owner->uid, owner->gid) != 0)
        return error_from_errno(errno, f->path().string(), "chown");
    }
    if (::lchown(vm.c_str(), owner->uid, owner->gid) != 0)
      return error_from_errno(errno, vm.string(), "chown");
  }
  if (::lchown(where.c_str(), owner->uid, owner->gid) != 0)
    return error_from_errno(errno, where, "chown");
  return line + ": handed from root to " + owner->name;
}

}  // namespace wattprobe
