#include "exporters/guest_energy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

#include "agent/base/workload_id.h"

namespace wattprobe {

OptionTable<GuestEnergyOptions> guest_energy_option_table() {
  return {text_option("guest-energy-dir", &GuestEnergyOptions::dir,
                      "host: keep DIR/<vm>/energy.json with each VM's energy, for its guest's "
                      "host source",
                      "expected a folder")};
}

namespace {

WorkloadId id_of(const Labels& l) {
  return WorkloadId{label_value(l, "workload"), label_value(l, "kind"), label_value(l, "namespace"),
                    label_value(l, "pod"), label_value(l, "container")};
}

constexpr const char* kTemp = ".energy.json.tmp";

}  // namespace

std::map<std::string, GuestEnergyFile> guest_energy_files(const Snapshot& snapshot,
                                                          const GuestEnergyOptions& options,
                                                          uint64_t sequence) {
  std::map<std::string, GuestEnergyFile> out;
  const Family* energy = snapshot.find("wattprobe_workload_energy_joules_total");
  if (!energy) return out;
  // Where a domain's energy comes from now: a domain is measured for the VM only while every
  // source the host takes it from measures (a model stand-in makes it an estimate).
  std::map<std::string, bool> measured_now;
  if (const Family* info = snapshot.find("wattprobe_energy_source_info")) {
    for (const Series& s : info->series) {
      if (label_value(s.labels, "state") != "ok") continue;
      auto [it, fresh] = measured_now.try_emplace(label_value(s.labels, "domain"), true);
      it->second = it->second && label_value(s.labels, "measured") == "true";
    }
  }
  std::optional<double> intensity;
  if (const Family* grid = snapshot.find("wattprobe_grid_carbon_intensity_grams_per_kwh");
      grid && !grid->series.empty()) {
    intensity = grid->series.front().value;
  }
  std::map<std::string, std::map<std::string, double>> joules;  // folder → domain → J
  std::set<std::string> clash;
  for (const Series& s : energy->series) {
    if (label_value(s.labels, "kind") != "vm") continue;
    WorkloadId id = id_of(s.labels);
    auto folder = vm_folder_name(id);
    if (!folder) continue;
    auto [it, fresh] = out.try_emplace(*folder);
    if (!fresh && it->second.vm != id.workload) {
      // Two VMs with one folder name (a libvirt "ns_vm" beside KubeVirt's ns/vm): neither gets
      // the other's joules; neither is written.
      clash.insert(*folder);
      continue;
    }
    if (fresh) {
      GuestEnergyFile& f = it->second;
      f.vm = id.workload;
      f.sequence = sequence;
      f.host_time_ms = snapshot.timestamp_ms;
      f.interval_seconds = options.interval_seconds;
      f.idle_attribution = options.idle_attribution;
      f.idle_included = options.idle_attribution != "separate";
      f.grid_intensity = intensity;
      f.pue = options.pue;
    }
    joules[*folder][label_value(s.labels, "domain")] += s.value;
  }
  for (const std::string& folder : clash) out.erase(folder);
  for (auto& [folder, f] : out) {
    for (const auto& [domain, j] : joules[folder]) {
      auto m = measured_now.find(domain);
      f.domains.push_back({domain, j, m != measured_now.end() && m->second});
    }
  }
  return out;
}

GuestEnergyWriter::GuestEnergyWriter(GuestEnergyOptions options) : options_(std::move(options)) {}

GuestEnergyWriter::~GuestEnergyWriter() {
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

Result<bool> GuestEnergyWriter::open() {
  const std::string dir = options_.dir.string();
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return error_from_errno(errno, dir, "create the guest energy folder");
  }
  // DIR is the administrator's own setting and may be a symlink; only what lies inside it is
  // shared with guests and opened without following links.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return error_from_errno(errno, dir, "open the guest energy folder");
  dir_fd_ = fd;
  return true;
}

Result<bool> GuestEnergyWriter::write_one(const std::string& folder, const std::string& text) {
  const std::string where = (options_.dir / folder).string();
  if (::mkdirat(dir_fd_, folder.c_str(), 0755) != 0 && errno != EEXIST) {
    return error_from_errno(errno, where, "create the VM's folder");
  }
  // A symlink in its place (ELOOP, ENOTDIR) is refused, never followed.
  int vm_fd = ::openat(dir_fd_, folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (vm_fd < 0) return error_from_errno(errno, where, "open the VM's folder (not a symlink)");
  auto fail = [&](const char* what) -> Result<bool> {
    Error e = error_from_errno(errno, where + "/" + kTemp, what);
    ::unlinkat(vm_fd, kTemp, 0);
    ::close(vm_fd);
    return e;
  };
  // Whatever has the temporary's name (a stale one, or a link a guest planted) goes first, so
  // O_EXCL makes a new inode that nothing outside this folder shares.
  ::unlinkat(vm_fd, kTemp, 0);
  int fd = ::openat(vm_fd, kTemp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return fail("create");
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      return fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    return fail("fsync");
  }
  ::close(fd);
  if (::renameat(vm_fd, kTemp, vm_fd, std::string(kGuestEnergyFileName).c_str()) != 0) {
    return fail("rename over energy.json");
  }
  ::close(vm_fd);
  return true;
}

std::vector<std::string> GuestEnergyWriter::write(const Snapshot& snapshot) {
  std::vector<std::string> log;
  if (dir_fd_ < 0) return log;
  ++sequence_;
  auto files = guest_energy_files(snapshot, options_, sequence_);
  vms_ = files.size();
  for (const auto& [folder, file] : files) {
    auto written = write_one(folder, to_json(file));
    if (written.ok()) {
      if (failing_.erase(folder))
        log.push_back("guest energy for VM " + file.vm + " written again");
      continue;
    }
    std::string reason(to_string(written.error().kind));
    ++errors_[reason];
    std::string line =
        "guest energy for VM " + file.vm + " not written: " + written.error().message();
    auto [it, fresh] = failing_.try_emplace(folder, reason);
    if (fresh || it->second != reason) {
      it->second = reason;
      log.push_back(std::move(line));
    }
  }
  return log;
}

void GuestEnergyWriter::append_families(std::vector<Family>& out) const {
  out.push_back({"wattprobe_guest_energy_vms",
                 "VMs whose energy.json the last tick wrote under --guest-energy-dir.",
                 MetricType::gauge,
                 {{{}, static_cast<double>(vms_)}}});
  Family errors{"wattprobe_agent_guest_energy_errors_total",
                "energy.json files not written under --guest-energy-dir, by reason (absent, "
                "permission, malformed, transient, unsupported).",
                MetricType::counter,
                {}};
  for (std::string_view reason :
       {"absent", "permission", "malformed", "transient", "unsupported"}) {
    auto it = errors_.find(std::string(reason));
    errors.series.push_back({{{"reason", std::string(reason)}},
                             it == errors_.end() ? 0.0 : static_cast<double>(it->second)});
  }
  out.push_back(std::move(errors));
}

Result<bool> GuestEnergyWriter::start(const SinkContext& context) {
  log_ = context.log;
  return open();
}

void GuestEnergyWriter::on_snapshot(const SnapshotPtr& snapshot) {
  for (const std::string& line : write(*snapshot)) {
    if (log_) log_(line);
  }
}

}  // namespace wattprobe
