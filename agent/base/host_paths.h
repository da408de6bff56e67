#pragma once

#include <filesystem>
#include <string_view>

namespace wattprobe {

/// Every reader of the host goes through these roots (never a hard-coded /sys:
/// docs/architecture.md), so tests and containers can point the agent at another tree. Each root is
/// the folder that holds `sys`, `proc`, `dev` or `var/log/pods`; all default to "/".
struct HostPaths {
  std::filesystem::path sysfs_root{"/"};
  std::filesystem::path procfs_root{"/"};
  std::filesystem::path dev_root{"/"};
  std::filesystem::path pods_log_root{"/"};

  std::filesystem::path sys(std::string_view rel = {}) const {
    return join(sysfs_root, "sys", rel);
  }
  std::filesystem::path proc(std::string_view rel = {}) const {
    return join(procfs_root, "proc", rel);
  }
  std::filesystem::path dev(std::string_view rel = {}) const { return join(dev_root, "dev", rel); }
  std::filesystem::path cgroup(std::string_view rel = {}) const {
    return join(sysfs_root, "sys/fs/cgroup", rel);
  }
  std::filesystem::path pods_log(std::string_view rel = {}) const {
    return join(pods_log_root, "var/log/pods", rel);
  }

 private:
  static std::filesystem::path join(const std::filesystem::path& root, std::string_view top,
                                    std::string_view rel) {
    std::filesystem::path p = root / top;
    if (!rel.empty()) p /= std::filesystem::path(rel).relative_path();
    return p;
  }
};

}  // namespace wattprobe
