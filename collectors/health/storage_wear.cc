#include "collectors/health/storage_wear.h"

#include <fcntl.h>
#include <linux/nvme_ioctl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

constexpr uint8_t kGetLogPage = 0x02;
constexpr uint8_t kSmartHealthLog = 0x02;
constexpr std::size_t kLogBytes = 512;

uint64_t little_endian(std::span<const uint8_t> bytes) {
  uint64_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;) v = (v << 8) | bytes[i];
  return v;
}

Result<NvmeHealth> read_nvme(const fs::path& dev) {
  int fd = ::open(dev.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return error_from_errno(errno, dev.string(), "open");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode)) {
    ::close(fd);
    return Error{ErrorKind::unsupported, dev.string(),
                 "not a character device, so it takes no NVMe admin command"};
  }
  std::array<uint8_t, kLogBytes> page{};
  nvme_admin_cmd cmd{};
  cmd.opcode = kGetLogPage;
  cmd.nsid = 0xffffffff;  // the controller as a whole
  cmd.addr = reinterpret_cast<uintptr_t>(page.data());
  cmd.data_len = kLogBytes;
  // NUMDL (0's based dword count) in bits 31:16, the log identifier in bits 7:0.
  cmd.cdw10 = ((kLogBytes / 4 - 1) << 16) | kSmartHealthLog;
  int rc = ::ioctl(fd, NVME_IOCTL_ADMIN_CMD, &cmd);
  const int err = errno;
  ::close(fd);
  if (rc < 0) {
    Error e = error_from_errno(err, dev.string(), "NVMe Get Log Page (SMART)");
    if (e.kind == ErrorKind::permission) {
      e.detail +=
          "; the kernel allows this admin command only with CAP_SYS_ADMIN, which the "
          "agent holds only before it drops its privileges";
    }
    return e;
  }
  if (rc > 0) {
    return Error{
        ErrorKind::unsupported, dev.string(),
        "the controller answered the SMART log request with NVMe status " + std::to_string(rc)};
  }
  return parse_nvme_health_log(page, dev.string());
}

}  // namespace

Result<NvmeHealth> parse_nvme_health_log(std::span<const uint8_t> page, const std::string& where) {
  if (page.size() < kLogBytes) {
    return Error{ErrorKind::malformed, where,
                 "SMART log of " + std::to_string(page.size()) + " bytes, expected 512"};
  }
  NvmeHealth h;
  h.critical_warning = page[0];
  h.available_spare = page[3];
  h.percentage_used = page[5];
  const uint64_t high = little_endian(page.subspan(136, 8));
  h.power_on_hours = high != 0 ? UINT64_MAX : little_endian(page.subspan(128, 8));
  return h;
}

StorageWear read_storage_wear(const HostPaths& paths) {
  StorageWear out;
  std::error_code ec;
  std::vector<std::string> controllers;
  for (fs::directory_iterator it(paths.sys("class/nvme"), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("nvme") && name.size() > 4 &&
        name.find_first_not_of("0123456789", 4) == std::string::npos) {
      controllers.push_back(name);
    }
  }
  std::sort(controllers.begin(), controllers.end());
  for (const std::string& c : controllers) {
    DriveWear d;
    d.device = c;
    if (auto model = read_text(paths.sys("class/nvme/" + c + "/model"), 256); model) {
      d.model = std::string(trim(*model));
    }
    auto health = read_nvme(paths.dev(c));
    if (health) {
      d.nvme = *health;
    } else {
      d.problem = health.error();
    }
    out.drives.push_back(std::move(d));
  }
  std::vector<std::string> disks;
  ec.clear();
  for (fs::directory_iterator it(paths.sys("block"), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("sd")) disks.push_back(name);
  }
  std::sort(disks.begin(), disks.end());
  for (const std::string& disk : disks) {
    auto rotational = read_u64(paths.sys("block/" + disk + "/queue/rotational"));
    if (!rotational || *rotational != 0) continue;
    DriveWear d;
    d.device = disk;
    if (auto model = read_text(paths.sys("block/" + disk + "/device/model"), 256); model) {
      d.model = std::string(trim(*model));
    }
    d.problem = Error{ErrorKind::unsupported, paths.sys("block/" + disk).string(),
                      "SATA/SAS SSD: the kernel exposes no wear attribute in sysfs; it is read "
                      "only with ATA pass-through (SG_IO, as smartctl does), which wattprobe does "
                      "not send"};
    out.drives.push_back(std::move(d));
  }
  if (out.drives.empty()) {
    out.none_reason = "no NVMe controller under " + paths.sys("class/nvme").string() +
                      " and no non-rotational sd* disk under " + paths.sys("block").string();
  }
  return out;
}

}  // namespace wattprobe
