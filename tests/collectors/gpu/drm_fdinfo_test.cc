#include "collectors/gpu/drm_fdinfo.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

/// A process's open file under the fake procfs: fd/<fd> links to `target`, fdinfo/<fd> holds
/// the text the kernel would show.
void open_file(const TempTree& t, int pid, int fd, const std::string& target,
               const std::string& fdinfo) {
  const std::string dir = "proc/" + std::to_string(pid);
  t.write(dir + "/fdinfo/" + std::to_string(fd), fdinfo);
  std::filesystem::create_directories(t.root() / dir / "fd");
  std::filesystem::path link = t.root() / dir / "fd" / std::to_string(fd);
  std::filesystem::remove(link);
  std::filesystem::create_symlink(target, link);
}

/// amdgpu's fdinfo (kernel 6.x), busy ns per engine.
std::string amdgpu(uint64_t client, uint64_t gfx_ns, uint64_t compute_ns,
                   const std::string& pdev = "0000:03:00.0") {
  return "pos:\t0\nflags:\t02100002\nmnt_id:\t25\ndrm-driver:\tamdgpu\ndrm-pdev:\t" + pdev +
         "\ndrm-client-id:\t" + std::to_string(client) +
         "\ndrm-memory-vram:\t1024 KiB\ndrm-engine-gfx:\t" + std::to_string(gfx_ns) +
         " ns\ndrm-engine-compute:\t" + std::to_string(compute_ns) + " ns\n";
}

std::map<uint32_t, double> shares_of(
    const std::map<std::string, std::vector<DrmBusySplit::Share>>& split, const std::string& pdev) {
  std::map<uint32_t, double> out;
  if (auto it = split.find(pdev); it != split.end()) {
    for (const auto& s : it->second) out[s.pid] = s.share;
  }
  return out;
}

TEST(DrmFdinfo, ParsesEngineNanosecondsAndXeCycles) {
  DrmClient a;
  ASSERT_TRUE(parse_drm_fdinfo(amdgpu(7, 1000, 500), a));
  EXPECT_EQ(a.driver, "amdgpu");
  EXPECT_EQ(a.pdev, "0000:03:00.0");
  EXPECT_TRUE(a.has_client_id);
  EXPECT_EQ(a.client_id, 7u);
  EXPECT_EQ(a.busy, 1500u);
  EXPECT_FALSE(a.cycles);

  // i915 also says how many engines of a class there are: a count, not time.
  DrmClient i;
  ASSERT_TRUE(
      parse_drm_fdinfo("drm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t3\n"
                       "drm-engine-render:\t900 ns\ndrm-engine-capacity-video:\t2\n"
                       "drm-engine-video:\t100 ns\n",
                       i));
  EXPECT_EQ(i.busy, 1000u);

  DrmClient x;
  ASSERT_TRUE(
      parse_drm_fdinfo("drm-driver:\txe\ndrm-pdev:\t0000:03:00.0\ndrm-client-id:\t9\n"
                       "drm-cycles-rcs:\t4000\ndrm-total-cycles-rcs:\t99999\n"
                       "drm-cycles-ccs:\t600\n",
                       x));
  EXPECT_TRUE(x.cycles);
  EXPECT_EQ(x.busy, 4600u) << "the device's total cycles are not the client's";

  DrmClient not_drm;
  EXPECT_FALSE(parse_drm_fdinfo("pos:\t0\nflags:\t02\nmnt_id:\t25\n", not_drm));
}

TEST(DrmFdinfo, SplitsEachDeviceByTheBusyTimeItsProcessesAdded) {
  TempTree t;
  DrmBusySplit split;
  auto tick = [&] { return split.tick(scan_drm_clients(t.paths())); };
  // 100 and 200 on the dGPU, 300 on the iGPU; a log file and a socket are not read.
  open_file(t, 100, 3, "/dev/dri/renderD128", amdgpu(1, 1'000, 0));
  open_file(t, 200, 4, "/dev/dri/renderD128", amdgpu(2, 5'000, 0));
  open_file(t, 300, 5, "/dev/dri/renderD129",
            "drm-driver:\ti915\ndrm-pdev:\t0000:00:02.0\ndrm-client-id:\t1\n"
            "drm-engine-render:\t10 ns\n");
  open_file(t, 100, 1, "/var/log/app.log", amdgpu(99, 1'000'000'000, 0));
  open_file(t, 200, 2, "socket:[1234]", "pos:\t0\n");
  t.write("proc/stat", "cpu 1 2 3\n");  // not a process
  DrmScan first = scan_drm_clients(t.paths());
  EXPECT_EQ(first.clients.size(), 3u);
  EXPECT_EQ(first.processes, 3u);
  EXPECT_TRUE(split.tick(first).empty()) << "earlier busy time is not this tick's";

  // 100 adds 3 ms, 200 adds 1 ms (3:1); the iGPU's client adds nothing.
  open_file(t, 100, 3, "/dev/dri/renderD128", amdgpu(1, 1'000 + 3'000'000, 0));
  open_file(t, 200, 4, "/dev/dri/renderD128", amdgpu(2, 5'000 + 600'000, 400'000));
  auto s = tick();
  auto d = shares_of(s, "0000:03:00.0");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_DOUBLE_EQ(d[100], 0.75);
  EXPECT_DOUBLE_EQ(d[200], 0.25);
  EXPECT_EQ(s.count("0000:00:02.0"), 0u) << "an idle device has no shares";
}

TEST(DrmFdinfo, ASharedFileCountsOnceAndAResetCountsNothing) {
  TempTree t;
  DrmBusySplit split;
  auto tick = [&] { return split.tick(scan_drm_clients(t.paths())); };
  // 500 forked 501: both show client 4, which is one file; 502 has its own.
  open_file(t, 500, 7, "/dev/dri/renderD128", amdgpu(4, 0, 0));
  open_file(t, 501, 7, "/dev/dri/renderD128", amdgpu(4, 0, 0));
  open_file(t, 502, 3, "/dev/dri/card0", amdgpu(5, 0, 0));
  tick();
  for (int pid : {500, 501}) open_file(t, pid, 7, "/dev/dri/renderD128", amdgpu(4, 2'000, 0));
  open_file(t, 502, 3, "/dev/dri/card0", amdgpu(5, 2'000, 0));
  auto d = shares_of(tick(), "0000:03:00.0");
  EXPECT_DOUBLE_EQ(d[500], 0.5) << "the shared file counts once, under the lowest pid";
  EXPECT_EQ(d.count(501), 0u);
  EXPECT_DOUBLE_EQ(d[502], 0.5);

  // The driver reloads: 502's counter goes back. It counts nothing this tick, then from there.
  open_file(t, 500, 7, "/dev/dri/renderD128", amdgpu(4, 3'000, 0));
  open_file(t, 501, 7, "/dev/dri/renderD128", amdgpu(4, 3'000, 0));
  open_file(t, 502, 3, "/dev/dri/card0", amdgpu(5, 100, 0));
  d = shares_of(tick(), "0000:03:00.0");
  EXPECT_DOUBLE_EQ(d[500], 1.0);
  EXPECT_EQ(d.count(502), 0u);
  open_file(t, 502, 3, "/dev/dri/card0", amdgpu(5, 1'100, 0));
  std::filesystem::remove_all(t.root() / "proc/500");  // 500 exits; 501 still holds client 4
  open_file(t, 501, 7, "/dev/dri/renderD128", amdgpu(4, 4'000, 0));
  d = shares_of(tick(), "0000:03:00.0");
  EXPECT_DOUBLE_EQ(d[501], 0.5) << "the file lives on in 501, with its history";
  EXPECT_DOUBLE_EQ(d[502], 0.5);
}

}  // namespace
}  // namespace wattprobe
