#include "collectors/identity/cgroup_resolver.h"

#include <sys/stat.h>

#include <algorithm>
#include <system_error>
#include <utility>
#include <vector>

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxPath = 4096;      // PATH_MAX: the kernel never prints longer
constexpr std::size_t kMaxComponent = 255;  // NAME_MAX
constexpr std::size_t kShortId = 12;        // docker's short id
constexpr std::size_t kMaxPodsScanned = 100000;

bool is_hex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

bool is_container_id(std::string_view s) { return s.size() == 64 && is_hex(s); }

/// Printable UTF-8: well-formed sequences, no C0/C1 controls or DEL, no overlongs or surrogates.
bool is_clean(std::string_view s) {
  if (s.empty() || s.size() > kMaxComponent) return false;
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c < 0x20 || c == 0x7f) return false;
      ++i;
      continue;
    }
    std::size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    if (cp >= 0x80 && cp < 0xa0) return false;  // C1 controls
    i += len;
  }
  return true;
}

bool ends_with(std::string_view s, std::string_view suffix) { return s.ends_with(suffix); }

bool is_unit(std::string_view c) {
  for (std::string_view suffix : {".service", ".scope", ".socket", ".mount", ".swap"}) {
    if (c.size() > suffix.size() && ends_with(c, suffix)) return true;
  }
  return false;
}

/// The 64-hex id in a runtime's container cgroup name, whichever cgroup driver made it.
std::optional<std::string_view> container_id_in(std::string_view c) {
  std::string_view s = c;
  if (s.ends_with(".scope")) s.remove_suffix(6);
  for (std::string_view prefix :
       {"cri-containerd-", "crio-conmon-", "crio-", "docker-", "libpod-conmon-", "libpod-",
        "nerdctl-", "containerd-", "cri-o-"}) {
    if (s.starts_with(prefix)) {
      s.remove_prefix(prefix.size());
      break;
    }
  }
  if (is_container_id(s)) return s;
  return std::nullopt;
}

bool is_conmon(std::string_view c) {
  return c.starts_with("crio-conmon-") || c.starts_with("libpod-conmon-");
}

/// The pod uid in a pod cgroup name: "pod<uid>" (cgroupfs driver, dashes) or
/// "kubepods-<qos>-pod<uid with _ for ->.slice" (systemd driver, where '-' is the hierarchy
/// separator). Static pods have a 32-hex config hash instead of a dashed uid.
std::optional<std::string> pod_uid_in(std::string_view c) {
  std::string_view s = c;
  if (s.ends_with(".slice")) {
    s.remove_suffix(6);
    auto at = s.rfind("-pod");
    if (at == std::string_view::npos) return std::nullopt;
    s.remove_prefix(at + 4);
  } else {
    if (!s.starts_with("pod")) return std::nullopt;
    s.remove_prefix(3);
  }
  if (s.size() < 32 || s.size() > 36) return std::nullopt;
  std::string uid(s);
  for (char& ch : uid) {
    if (ch == '_') ch = '-';
    if (!(ch == '-' || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) return std::nullopt;
  }
  return uid;
}

/// systemd's unit-name escaping undone: "\x2d" → '-'. A result that is not printable UTF-8 (an
/// escaped control character or '/') keeps the escaped form, which is.
std::string systemd_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x' && is_hex(s.substr(i + 2, 2))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 2, 2)), nullptr, 16));
      i += 3;
      continue;
    }
    out += s[i];
  }
  if (!is_clean(out) || out.find('/') != std::string::npos) return std::string(s);
  return out;
}

/// The domain name in libvirt's qemu scope "machine-qemu\x2d<N>\x2d<name>.scope" (systemd's
/// machine name "qemu-<N>-<name>", escaped). libvirt-lxc ("machine-lxc\x2d…") and
/// systemd-nspawn scopes share the shape but are containers.
std::optional<std::string> libvirt_qemu_domain(std::string_view c) {
  constexpr std::string_view kPrefix = "machine-qemu\\x2d";
  if (!c.starts_with(kPrefix) || !c.ends_with(".scope")) return std::nullopt;
  std::string_view s = c.substr(kPrefix.size(), c.size() - kPrefix.size() - 6);
  auto dash = s.find("\\x2d");
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  if (!std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(dash),
                   [](char ch) { return ch >= '0' && ch <= '9'; }))
    return std::nullopt;
  std::string_view name = s.substr(dash + 4);
  if (name.empty()) return std::nullopt;
  return systemd_unescape(name);
}

/// A Firecracker or cloud-hypervisor VM by its unit: "firecracker-<name>.scope|.service",
/// "cloud-hypervisor@<name>.service" and the like (systemd-run --unit, a template unit).
std::optional<std::string> vmm_unit_name(std::string_view c) {
  if (!is_unit(c)) return std::nullopt;
  std::string_view s = c.substr(0, c.rfind('.'));
  for (std::string_view vmm : {"firecracker", "cloud-hypervisor"}) {
    if (s.size() > vmm.size() + 1 && s.starts_with(vmm) &&
        (s[vmm.size()] == '-' || s[vmm.size()] == '@')) {
      return systemd_unescape(s.substr(vmm.size() + 1));
    }
  }
  return std::nullopt;
}

/// KubeVirt names a VirtualMachineInstance's launcher pod "virt-launcher-<vmi>-<5 random>"
/// (generateName): the VMI's name is what is between.
std::optional<std::string> kubevirt_vmi(std::string_view pod) {
  constexpr std::string_view kPrefix = "virt-launcher-";
  if (!pod.starts_with(kPrefix)) return std::nullopt;
  std::string_view s = pod.substr(kPrefix.size());
  if (s.size() > 6 && s[s.size() - 6] == '-') s.remove_suffix(6);
  if (s.empty()) return std::nullopt;
  return std::string(s);
}

WorkloadId make(std::string workload, std::string kind) {
  WorkloadId id;
  id.workload = std::move(workload);
  id.kind = std::move(kind);
  return id;
}

WorkloadId other() { return make("other", "other"); }

WorkloadId pod_identity(const std::string& uid, std::string_view container_id,
                        const PodNames* pods) {
  WorkloadId id;
  id.kind = "pod";
  id.pod = uid;
  if (!container_id.empty()) id.container = std::string(container_id.substr(0, kShortId));
  if (pods != nullptr) {
    if (auto info = pods->pod(uid)) {
      id.namespace_ = info->namespace_;
      id.pod = info->name;
    }
    if (!container_id.empty()) {
      if (auto name = pods->container(container_id)) id.container = *name;
    }
  }
  if (auto vmi = kubevirt_vmi(id.pod); vmi && !id.namespace_.empty()) {
    // The whole launcher pod (qemu, libvirtd, virt-launcher itself) is the VM's.
    id.kind = "vm";
    id.container.clear();
    id.workload = id.namespace_ + "/" + *vmi;
    return id;
  }
  id.workload = id.namespace_.empty() ? id.pod : id.namespace_ + "/" + id.pod;
  id.workload += "/" + id.container;
  return id;
}

}  // namespace

std::optional<fs::path> find_cgroup2_root(const HostPaths& paths) {
  std::error_code ec;
  if (fs::exists(paths.cgroup("cgroup.controllers"), ec)) return paths.cgroup();
  if (fs::exists(paths.cgroup("unified/cgroup.controllers"), ec)) return paths.cgroup("unified");
  return std::nullopt;
}

WorkloadId identity_from_cgroup_path(std::string_view path, const PodNames* pods) {
  if (path.size() > kMaxPath) {
    // Longer than the kernel ever prints: keep the whole components that fit.
    path = path.substr(0, kMaxPath);
    path = path.substr(0, path.rfind('/') == std::string_view::npos ? 0 : path.rfind('/'));
  }
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    auto slash = path.find('/');
    std::string_view c = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash + 1);
    if (c.empty() || c == ".") continue;
    if (c == ".." || !is_clean(c)) break;  // the clean prefix decides
    parts.push_back(c);
  }
  if (parts.empty()) return make("system", "system");

  // Anything in a user's session is that user's, whatever its name: a rootless container
  // (user@1000.service/…/docker-<id>.scope) or a cgroup any user may name like a pod or a VM
  // would otherwise pass for one, with a container's or a pod's labels (issue 25).
  if (parts[0] == "user.slice") {
    for (std::string_view c : parts) {
      if (c.starts_with("user@") && c.ends_with(".service")) return make(std::string(c), "session");
    }
    for (std::string_view c : parts) {
      if (is_unit(c)) return make(std::string(c), "session");
    }
  }

  // Kubernetes: a kubepods ancestor, then the pod, then the container (both drivers; also nested
  // under a kubelet.slice or a kind node's docker scope).
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].find("kubepods") == std::string_view::npos) continue;
    for (std::size_t j = i; j < parts.size(); ++j) {
      auto uid = pod_uid_in(parts[j]);
      if (!uid) continue;
      std::string_view container;
      if (j + 1 < parts.size() && !is_conmon(parts[j + 1])) {
        if (auto cid = container_id_in(parts[j + 1])) container = *cid;
      }
      return pod_identity(*uid, container, pods);
    }
    break;
  }

  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view c = parts[i];
    if (auto cid = container_id_in(c)) {
      std::string short_id(cid->substr(0, kShortId));
      WorkloadId id = make(short_id, "container");
      id.container = short_id;
      return id;
    }
    if (c.starts_with("lxc.payload.") && c.size() > 12) {
      WorkloadId id = make(std::string(c.substr(12)), "container");
      id.container = id.workload;
      return id;
    }
    if (i > 0 && parts[i - 1] == "machine.slice") {
      if (auto domain = libvirt_qemu_domain(c)) return make(std::move(*domain), "vm");
    }
    if (i == 0 && c == "firecracker" && parts.size() > 1) {
      // The jailer's default --parent-cgroup: firecracker/<vm id>.
      return make(std::string(parts[1]), "vm");
    }
    if (auto vm = vmm_unit_name(c)) return make(std::move(*vm), "vm");
    if (i > 0 && parts[i - 1] == "machine.slice" && c.starts_with("machine-") &&
        c.ends_with(".scope") && c.size() > 14) {
      WorkloadId id = make(std::string(c.substr(8, c.size() - 14)), "container");
      id.container = id.workload;
      return id;
    }
  }

  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (!is_unit(parts[i])) continue;
    if (i == 0 && parts[i] == "init.scope") return make("init.scope", "system");
    return make(std::string(parts[i]), "service");
  }

  bool all_slices = std::all_of(parts.begin(), parts.end(),
                                [](std::string_view c) { return c.ends_with(".slice"); });
  if (all_slices) return make(std::string(parts.back()), "system");
  for (std::string_view c : parts) {
    if (!c.ends_with(".slice")) return make(std::string(c), "other");
  }
  return other();
}

PodNames::PodNames(HostPaths paths, std::chrono::milliseconds min_refresh,
                   std::chrono::milliseconds min_refresh_on_miss)
    : paths_(std::move(paths)),
      min_refresh_(min_refresh),
      min_refresh_on_miss_(min_refresh_on_miss) {}

void PodNames::maybe_refresh(bool miss) const {
  auto now = std::chrono::steady_clock::now();
  if (last_refresh_) {
    auto age = now - *last_refresh_;
    if (age < (miss ? min_refresh_on_miss_ : min_refresh_)) return;
  }
  refresh();
}

std::optional<PodInfo> PodNames::pod(std::string_view uid) const {
  maybe_refresh(false);
  auto it = pods_.find(std::string(uid));
  if (it == pods_.end()) {
    maybe_refresh(true);
    it = pods_.find(std::string(uid));
    if (it == pods_.end()) return std::nullopt;
  }
  return it->second;
}

std::optional<std::string> PodNames::container(std::string_view container_id) const {
  maybe_refresh(false);
  auto it = containers_.find(std::string(container_id));
  if (it == containers_.end()) {
    maybe_refresh(true);
    it = containers_.find(std::string(container_id));
    if (it == containers_.end()) return std::nullopt;
  }
  return it->second;
}

void PodNames::refresh() const {
  last_refresh_ = std::chrono::steady_clock::now();
  std::unordered_map<std::string, PodInfo> pods;
  std::unordered_map<std::string, std::string> containers;
  std::error_code ec;
  std::size_t seen = 0;
  // <namespace>_<pod>_<uid>: namespaces and pod names are DNS labels/subdomains (no '_'), so the
  // first and last '_' split it unambiguously.
  for (fs::directory_iterator it(paths_.pods_log(), ec), end; !ec && it != end; it.increment(ec)) {
    if (++seen > kMaxPodsScanned) break;
    std::string name = it->path().filename().string();
    auto first = name.find('_');
    auto last = name.rfind('_');
    if (first == std::string::npos || first == last || first == 0 || last + 1 >= name.size())
      continue;
    std::string ns = name.substr(0, first);
    std::string pod = name.substr(first + 1, last - first - 1);
    std::string uid = name.substr(last + 1);
    if (!is_clean(ns) || !is_clean(pod) || !is_clean(uid) || pod.empty()) continue;
    pods[uid] = PodInfo{ns, pod};
  }
  ec.clear();
  seen = 0;
  // <pod>_<namespace>_<container>-<64 hex>.log
  fs::path logs = paths_.pods_log_root / "var/log/containers";
  for (fs::directory_iterator it(logs, ec), end; !ec && it != end; it.increment(ec)) {
    if (++seen > kMaxPodsScanned) break;
    std::string name = it->path().filename().string();
    if (!name.ends_with(".log") || name.size() < 4 + 65) continue;
    std::string_view stem(name);
    stem.remove_suffix(4);
    std::string_view id = stem.substr(stem.size() - 64);
    if (!is_container_id(id) || stem[stem.size() - 65] != '-') continue;
    std::string_view rest = stem.substr(0, stem.size() - 65);
    auto second = rest.find('_', rest.find('_') + 1);
    if (rest.find('_') == std::string_view::npos || second == std::string_view::npos) continue;
    std::string_view container = rest.substr(second + 1);
    if (!is_clean(container)) continue;
    containers[std::string(id)] = std::string(container);
  }
  pods_ = std::move(pods);
  containers_ = std::move(containers);
}

CgroupResolver::CgroupResolver(HostPaths paths) : CgroupResolver(std::move(paths), Options{}) {}

CgroupResolver::CgroupResolver(HostPaths paths, Options options)
    : paths_(paths), options_(options), root_(find_cgroup2_root(paths)), pods_(paths) {}

WorkloadId CgroupResolver::resolve_path(std::string_view path) const {
  return identity_from_cgroup_path(path, &pods_);
}

const CgroupResolver::Entry* CgroupResolver::lookup(uint64_t cgroup_id) {
  auto it = cache_.find(cgroup_id);
  if (it != cache_.end()) return &it->second;
  auto now = std::chrono::steady_clock::now();
  if (last_scan_ && now - *last_scan_ < options_.min_rescan_interval) return nullptr;
  rescan();
  it = cache_.find(cgroup_id);
  return it == cache_.end() ? nullptr : &it->second;
}

WorkloadId CgroupResolver::resolve_id(uint64_t cgroup_id) {
  const Entry* e = lookup(cgroup_id);
  return e ? e->id : other();
}

std::optional<std::string> CgroupResolver::path_of(uint64_t cgroup_id) {
  const Entry* e = lookup(cgroup_id);
  if (!e) return std::nullopt;
  return e->path;
}

std::size_t CgroupResolver::rescan() {
  last_scan_ = std::chrono::steady_clock::now();
  if (!root_) root_ = find_cgroup2_root(paths_);
  if (!root_) return 0;
  ++scans_;
  std::size_t seen = 0;
  // Depth-first with an explicit stack: a deep or churning tree cannot blow the call stack, and a
  // folder removed mid-walk is simply skipped.
  struct Pending {
    fs::path dir;
    std::string rel;
    std::size_t depth;
  };
  std::vector<Pending> stack{{*root_, "/", 0}};
  while (!stack.empty()) {
    Pending p = std::move(stack.back());
    stack.pop_back();
    struct stat st;
    if (::stat(p.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    ++seen;
    uint64_t id = st.st_ino;
    auto it = cache_.find(id);
    if (it == cache_.end() || it->second.path != p.rel) {
      cache_[id] = Entry{p.rel, identity_from_cgroup_path(p.rel, &pods_), scans_};
    } else {
      it->second.last_seen_scan = scans_;
    }
    if (p.depth >= options_.max_depth) continue;
    std::error_code ec;
    for (fs::directory_iterator d(p.dir, ec), end; !ec && d != end; d.increment(ec)) {
      std::error_code tec;
      if (!d->is_directory(tec) || d->is_symlink(tec)) continue;
      std::string name = d->path().filename().string();
      std::string rel = p.rel == "/" ? "/" + name : p.rel + "/" + name;
      stack.push_back({d->path(), std::move(rel), p.depth + 1});
    }
  }
  if (cache_.size() > options_.max_entries) evict();
  return seen;
}

void CgroupResolver::evict() {
  std::vector<std::pair<uint64_t, uint64_t>> by_age;  // last_seen_scan, id
  by_age.reserve(cache_.size());
  for (const auto& [id, e] : cache_) by_age.emplace_back(e.last_seen_scan, id);
  std::size_t excess = cache_.size() - options_.max_entries;
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(excess),
                   by_age.end());
  for (std::size_t i = 0; i < excess; ++i) cache_.erase(by_age[i].second);
}

}  // namespace wattprobe
