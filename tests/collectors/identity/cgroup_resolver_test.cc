#include "collectors/identity/cgroup_resolver.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include "tests/support/temp_tree.h"

namespace wattprobe {

void PrintTo(const WorkloadId& id, std::ostream* os) {
  *os << "{workload=\"" << id.workload << "\" kind=" << id.kind << " ns=\"" << id.namespace_
      << "\" pod=\"" << id.pod << "\" container=\"" << id.container << "\"}";
}

namespace {

namespace fs = std::filesystem;
using testing::TempTree;

const std::string kHexA = "3f4e2a1b9c8d7e6f50412233445566778899aabbccddeeff0011223344556677";
const std::string kHexB = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const std::string kUid = "8f3a9c2e-1b4d-4e6f-9a7b-2c5d8e1f0a3b";
const std::string kUidUnderscores = "8f3a9c2e_1b4d_4e6f_9a7b_2c5d8e1f0a3b";

struct Case {
  std::string name;
  std::string path;
  WorkloadId want;
};

WorkloadId id(std::string workload, std::string kind, std::string ns = "", std::string pod = "",
              std::string container = "") {
  return WorkloadId{workload, kind, ns, pod, container};
}

WorkloadId pod_id(const std::string& container) {
  return id(kUid + "/" + container, "pod", "", kUid, container);
}

std::vector<Case> shapes() {
  const std::string a12 = kHexA.substr(0, 12);
  return {
      {"root", "/", id("system", "system")},
      {"empty", "", id("system", "system")},
      {"systemd itself", "/init.scope", id("init.scope", "system")},
      {"slice only", "/system.slice", id("system.slice", "system")},
      {"service", "/system.slice/nginx.service", id("nginx.service", "service")},
      {"templated service in sub-slice", "/system.slice/system-getty.slice/getty@tty1.service",
       id("getty@tty1.service", "service")},
      {"delegated subtree of a service", "/system.slice/nginx.service/workers/w1",
       id("nginx.service", "service")},
      {"escaped unit name", "/system.slice/system-systemd\\x2dfsck.slice/systemd-fsck@dev.service",
       id("systemd-fsck@dev.service", "service")},
      {"non-systemd group", "/wattprobe-test/foo.service", id("foo.service", "service")},
      {"hand-made group", "/batch/job7", id("batch", "other")},
      {"user manager", "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service",
       id("user@1000.service", "session")},
      {"user manager itself", "/user.slice/user-1000.slice/user@1000.service/init.scope",
       id("user@1000.service", "session")},
      {"login session", "/user.slice/user-1000.slice/session-3.scope",
       id("session-3.scope", "session")},
      {"user slice only", "/user.slice/user-1000.slice", id("user-1000.slice", "system")},
      {"docker systemd driver", "/system.slice/docker-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"docker cgroupfs driver", "/docker/" + kHexA, id(a12, "container", "", "", a12)},
      {"docker with systemd inside", "/system.slice/docker-" + kHexA + ".scope/init.scope",
       id(a12, "container", "", "", a12)},
      {"nerdctl cgroupfs (namespace default)", "/default/" + kHexA,
       id(a12, "container", "", "", a12)},
      {"nerdctl systemd", "/system.slice/nerdctl-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"containerd outside k8s", "/system.slice/cri-containerd-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"cri-o outside k8s", "/machine.slice/crio-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"podman rootful", "/machine.slice/libpod-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"podman rootful container payload", "/machine.slice/libpod-" + kHexA + ".scope/container",
       id(a12, "container", "", "", a12)},
      {"podman conmon", "/machine.slice/libpod-conmon-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      // Issue 25: in a user's session a name like a container's, a pod's or a VM's is the
      // user's workload, never a container, pod or VM with those labels (any user can name one).
      {"podman rootless is the user's",
       "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kHexA + ".scope",
       id("user@1000.service", "session")},
      {"docker-named scope in a user's session is the user's",
       "/user.slice/user-1000.slice/user@1000.service/app.slice/docker-" + kHexA + ".scope",
       id("user@1000.service", "session")},
      {"kubepods-like names in a user's session are the user's",
       "/user.slice/user-1000.slice/user@1000.service/kubepods.slice/kubepods-besteffort.slice/"
       "kubepods-besteffort-pod0b1c2d3e_4f50_6172_8394_a5b6c7d8e9f0.slice/cri-containerd-" +
           kHexA + ".scope",
       id("user@1000.service", "session")},
      {"a VM-named unit in a login session is the session's",
       "/user.slice/user-1000.slice/session-3.scope/firecracker-guest1.scope",
       id("session-3.scope", "session")},
      {"podman pod",
       "/machine.slice/machine-libpod_pod_" + kHexB + ".slice/libpod-" + kHexA + ".scope",
       id(a12, "container", "", "", a12)},
      {"lxd/lxc", "/lxc.payload.web1/system.slice/nginx.service",
       id("web1", "container", "", "", "web1")},
      {"systemd-nspawn machine", "/machine.slice/machine-build\\x2dbox.scope",
       id("build\\x2dbox", "container", "", "", "build\\x2dbox")},
      {"libvirt-lxc stays a container", "/machine.slice/machine-lxc\\x2d7\\x2dweb.scope",
       id("lxc\\x2d7\\x2dweb", "container", "", "", "lxc\\x2d7\\x2dweb")},
      // Virtual machines.
      {"libvirt qemu domain", "/machine.slice/machine-qemu\\x2d1\\x2dguest1.scope",
       id("guest1", "vm")},
      {"libvirt qemu domain with a dash, vcpu thread group",
       "/machine.slice/machine-qemu\\x2d12\\x2dweb\\x2dfront.scope/libvirt/vcpu0",
       id("web-front", "vm")},
      {"libvirt qemu escaped slash keeps the escape",
       "/machine.slice/machine-qemu\\x2d3\\x2da\\x2fb.scope", id("a\\x2fb", "vm")},
      {"libvirt qemu without a domain id is not a vm", "/machine.slice/machine-qemu\\x2dx.scope",
       id("qemu\\x2dx", "container", "", "", "qemu\\x2dx")},
      {"firecracker jailer", "/firecracker/vm-42", id("vm-42", "vm")},
      {"firecracker jailer, vcpu threads", "/firecracker/vm-42/fc_vcpu0", id("vm-42", "vm")},
      {"firecracker in a transient scope", "/system.slice/firecracker-build7.scope",
       id("build7", "vm")},
      {"cloud-hypervisor template unit",
       "/system.slice/system-cloud\\x2dhypervisor.slice/"
       "cloud-hypervisor@db1.service",
       id("db1", "vm")},
      {"a service merely named like a vmm", "/system.slice/firecrackers.service",
       id("firecrackers.service", "service")},
      // Kubernetes, systemd cgroup driver, all three QoS classes and every runtime's leaf.
      {"k8s systemd burstable containerd",
       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores +
           ".slice/cri-containerd-" + kHexA + ".scope",
       pod_id(a12)},
      {"k8s systemd besteffort cri-o",
       "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidUnderscores +
           ".slice/crio-" + kHexA + ".scope",
       pod_id(a12)},
      {"k8s systemd guaranteed docker",
       "/kubepods.slice/kubepods-pod" + kUidUnderscores + ".slice/docker-" + kHexA + ".scope",
       pod_id(a12)},
      {"k8s systemd pod slice alone",
       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores +
           ".slice",
       pod_id("")},
      {"k8s cri-o conmon is pod overhead",
       "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidUnderscores +
           ".slice/crio-conmon-" + kHexA + ".scope",
       pod_id("")},
      {"k8s qos slice alone", "/kubepods.slice/kubepods-burstable.slice",
       id("kubepods-burstable.slice", "system")},
      {"kind node nested in docker",
       "/system.slice/docker-" + kHexB +
           ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/"
           "kubelet-kubepods-besteffort-pod" +
           kUidUnderscores + ".slice/cri-containerd-" + kHexA + ".scope",
       pod_id(a12)},
      // Kubernetes, cgroupfs driver.
      {"k8s cgroupfs burstable", "/kubepods/burstable/pod" + kUid + "/" + kHexA, pod_id(a12)},
      {"k8s cgroupfs besteffort", "/kubepods/besteffort/pod" + kUid + "/" + kHexA, pod_id(a12)},
      {"k8s cgroupfs guaranteed", "/kubepods/pod" + kUid + "/" + kHexA, pod_id(a12)},
      {"k8s cgroupfs cri-o leaf", "/kubepods/pod" + kUid + "/crio-" + kHexA, pod_id(a12)},
      {"k8s cgroupfs pause/sandbox dir missing", "/kubepods/burstable/pod" + kUid, pod_id("")},
      {"k8s static pod (32-hex uid)",
       "/kubepods/burstable/pod0123456789abcdef0123456789abcdef/" + kHexA,
       id("0123456789abcdef0123456789abcdef/" + a12, "pod", "", "0123456789abcdef0123456789abcdef",
          a12)},
      // Malformed: a sane identity from the clean prefix, never a crash.
      {"truncated docker id is just a scope", "/system.slice/docker-3f4e2a1b.scope",
       id("docker-3f4e2a1b.scope", "service")},
      {"truncated k8s container id keeps the pod", "/kubepods/burstable/pod" + kUid + "/3f4e2a1b",
       pod_id("")},
      {"uppercase hex is not a runtime id",
       "/docker/3F4E2A1B9C8D7E6F50412233445566778899AABBCCDDEEFF0011223344556677",
       id("docker", "other")},
      {"control character cuts the path", "/system.slice/ngi\x01nx.service",
       id("system.slice", "system")},
      {"newline cuts the path", "/system.slice/a.service\n0::/evil", id("system.slice", "system")},
      {"invalid utf-8 cuts the path", "/system.slice/caf\xc3.service",
       id("system.slice", "system")},
      {"overlong utf-8 cuts the path", "/system.slice/\xc0\xaf.service",
       id("system.slice", "system")},
      {"valid utf-8 is kept", "/system.slice/caf\xc3\xa9.service",
       id("caf\xc3\xa9.service", "service")},
      {"dot-dot cuts the path", "/system.slice/../../etc", id("system.slice", "system")},
      {"bad first component", "/\x7f/x.service", id("system", "system")},
      {"double slashes", "//system.slice//nginx.service/", id("nginx.service", "service")},
      {"component over 255 bytes", "/system.slice/" + std::string(300, 'a') + ".service",
       id("system.slice", "system")},
  };
}

TEST(CgroupIdentity, RealWorldShapes) {
  for (const Case& c : shapes()) {
    EXPECT_EQ(identity_from_cgroup_path(c.path), c.want) << c.name;
  }
}

TEST(VmFolderName, NameOrNamespacedNameAndNothingThatIsNotOneComponent) {
  EXPECT_EQ(vm_folder_name(id("guest1", "vm")), "guest1");
  EXPECT_EQ(vm_folder_name(id("shop/db", "vm", "shop", "virt-launcher-db-abcde")), "shop_db");
  EXPECT_EQ(vm_folder_name(id("guest1", "container")), std::nullopt);
  EXPECT_EQ(vm_folder_name(id("..", "vm")), std::nullopt);
  EXPECT_EQ(vm_folder_name(id("a/b", "vm")), std::nullopt);
  EXPECT_EQ(vm_folder_name(id("", "vm")), std::nullopt);
}

TEST(CgroupIdentity, OverlongPathIsSaneAndPrintable) {
  std::string path;
  while (path.size() < 10000) path += "/abc.slice";
  WorkloadId got = identity_from_cgroup_path(path);
  EXPECT_EQ(got, id("abc.slice", "system"));

  std::string garbage;
  for (int i = 0; i < 5000; ++i) garbage += static_cast<char>(i * 37 % 256);
  WorkloadId g = identity_from_cgroup_path(garbage);
  for (const std::string* s : {&g.workload, &g.kind, &g.namespace_, &g.pod, &g.container}) {
    for (char ch : *s) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << "in " << g.workload;
  }
  EXPECT_FALSE(g.workload.empty());
}

class PodNamesFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    tree.mkdir("var/log/pods/shop_checkout-7d9f8b6c5-x2x4q_" + kUid + "/payment");
    tree.mkdir("var/log/pods/shop_checkout-7d9f8b6c5-x2x4q_" + kUid + "/istio-proxy");
    tree.mkdir(
        "var/log/pods/kube-system_kube-apiserver-node1_0123456789abcdef0123456789abcdef/"
        "kube-apiserver");
    tree.mkdir("var/log/pods/not-a-pod-folder");
    tree.symlink("/var/log/pods/shop_checkout-7d9f8b6c5-x2x4q_" + kUid + "/payment/0.log",
                 "var/log/containers/checkout-7d9f8b6c5-x2x4q_shop_payment-" + kHexA + ".log");
    tree.symlink("/var/log/pods/x/0.log", "var/log/containers/garbage.log");
  }
  TempTree tree;
};

TEST_F(PodNamesFixture, NamesFromKubeletLogFolders) {
  PodNames names(tree.paths());
  auto info = names.pod(kUid);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->namespace_, "shop");
  EXPECT_EQ(info->name, "checkout-7d9f8b6c5-x2x4q");
  EXPECT_EQ(names.container(kHexA), "payment");
  EXPECT_FALSE(names.container(kHexB).has_value());

  WorkloadId got =
      identity_from_cgroup_path("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" +
                                    kUidUnderscores + ".slice/cri-containerd-" + kHexA + ".scope",
                                &names);
  EXPECT_EQ(got, id("shop/checkout-7d9f8b6c5-x2x4q/payment", "pod", "shop",
                    "checkout-7d9f8b6c5-x2x4q", "payment"));

  // Pod known, container id not (yet) in /var/log/containers: the short id stands in.
  WorkloadId partial =
      identity_from_cgroup_path("/kubepods/burstable/pod" + kUid + "/" + kHexB, &names);
  EXPECT_EQ(partial, id("shop/checkout-7d9f8b6c5-x2x4q/" + kHexB.substr(0, 12), "pod", "shop",
                        "checkout-7d9f8b6c5-x2x4q", kHexB.substr(0, 12)));

  WorkloadId static_pod =
      identity_from_cgroup_path("/kubepods/burstable/pod0123456789abcdef0123456789abcdef", &names);
  EXPECT_EQ(static_pod, id("kube-system/kube-apiserver-node1/", "pod", "kube-system",
                           "kube-apiserver-node1", ""));
}

TEST_F(PodNamesFixture, KubeVirtLauncherPodIsItsVirtualMachine) {
  const std::string uid = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
  tree.mkdir("var/log/pods/vms_virt-launcher-db-primary-x7k2p_" + uid + "/compute");
  PodNames names(tree.paths());
  WorkloadId got = identity_from_cgroup_path("/kubepods/burstable/pod" + uid + "/" + kHexB, &names);
  EXPECT_EQ(got, id("vms/db-primary", "vm", "vms", "virt-launcher-db-primary-x7k2p", ""));
  EXPECT_EQ(vm_folder_name(got), "vms_db-primary");
  // Without the kubelet's names the pod cannot be told from any other.
  EXPECT_EQ(identity_from_cgroup_path("/kubepods/burstable/pod" + uid + "/" + kHexB).kind, "pod");
}

TEST_F(PodNamesFixture, NewPodFoundOnMissAfterShortDelay) {
  PodNames names(tree.paths(), std::chrono::seconds(10), std::chrono::milliseconds(0));
  const std::string uid = "11111111-2222-3333-4444-555555555555";
  EXPECT_FALSE(names.pod(uid).has_value());
  tree.mkdir("var/log/pods/batch_job-1_" + uid + "/main");
  auto info = names.pod(uid);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->namespace_, "batch");
  EXPECT_EQ(info->name, "job-1");
}

TEST_F(PodNamesFixture, MissesAreRateLimited) {
  PodNames names(tree.paths(), std::chrono::seconds(10), std::chrono::seconds(10));
  const std::string uid = "11111111-2222-3333-4444-555555555555";
  EXPECT_FALSE(names.pod(uid).has_value());
  tree.mkdir("var/log/pods/batch_job-1_" + uid + "/main");
  EXPECT_FALSE(names.pod(uid).has_value()) << "a miss must not re-read the folder every call";
  names.refresh();
  EXPECT_TRUE(names.pod(uid).has_value());
}

TEST(CgroupRoot, PureV2HybridAndV1) {
  TempTree v2;
  v2.write("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  EXPECT_EQ(find_cgroup2_root(v2.paths()), v2.path("sys/fs/cgroup"));

  TempTree hybrid;
  hybrid.mkdir("sys/fs/cgroup/cpu,cpuacct");
  hybrid.write("sys/fs/cgroup/unified/cgroup.controllers", "\n");
  EXPECT_EQ(find_cgroup2_root(hybrid.paths()), hybrid.path("sys/fs/cgroup/unified"));

  TempTree v1;
  v1.mkdir("sys/fs/cgroup/cpu,cpuacct");
  EXPECT_FALSE(find_cgroup2_root(v1.paths()).has_value());
}

TEST(CgroupResolver, ResolvesIdsInAFakeTreeAndKeepsRemovedOnes) {
  TempTree tree;
  tree.write("sys/fs/cgroup/cgroup.controllers", "cpu\n");
  tree.mkdir("sys/fs/cgroup/system.slice/nginx.service");
  tree.mkdir("sys/fs/cgroup/system.slice/docker-" + kHexA + ".scope");
  struct stat st {};
  ASSERT_EQ(::stat(tree.path("sys/fs/cgroup/system.slice/nginx.service").c_str(), &st), 0);
  uint64_t nginx = st.st_ino;

  CgroupResolver resolver(tree.paths(), {std::chrono::milliseconds(0), 1000, 32});
  EXPECT_EQ(resolver.resolve_id(nginx), id("nginx.service", "service"));
  EXPECT_EQ(resolver.path_of(nginx), "/system.slice/nginx.service");

  // Removed since the scan: its tasks' last time still belongs to it.
  tree.remove("sys/fs/cgroup/system.slice/nginx.service");
  resolver.rescan();
  EXPECT_EQ(resolver.resolve_id(nginx), id("nginx.service", "service"));

  EXPECT_EQ(resolver.resolve_id(0xdeadbeefcafeULL), id("other", "other"));
}

TEST(CgroupResolver, CacheIsBoundedDroppingLongestGoneFirst) {
  TempTree tree;
  tree.write("sys/fs/cgroup/cgroup.controllers", "cpu\n");
  std::vector<uint64_t> ids;
  for (int i = 0; i < 10; ++i) {
    std::string rel = "sys/fs/cgroup/system.slice/s" + std::to_string(i) + ".service";
    tree.mkdir(rel);
    struct stat st {};
    ASSERT_EQ(::stat(tree.path(rel).c_str(), &st), 0);
    ids.push_back(st.st_ino);
  }
  // root + system.slice + 10 services = 12 entries, cap 8.
  CgroupResolver resolver(tree.paths(), {std::chrono::milliseconds(0), 8, 32});
  resolver.rescan();
  EXPECT_LE(resolver.cached(), 8u);
  // Made before the others go: the kernel never reuses a cgroup's id, but a temporary
  // directory's inode number is reused at once, which would resolve to a stale name.
  tree.mkdir("sys/fs/cgroup/system.slice/fresh.service");
  for (int i = 0; i < 10; ++i)
    tree.remove("sys/fs/cgroup/system.slice/s" + std::to_string(i) + ".service");
  struct stat st {};
  ASSERT_EQ(::stat(tree.path("sys/fs/cgroup/system.slice/fresh.service").c_str(), &st), 0);
  EXPECT_EQ(resolver.resolve_id(st.st_ino), id("fresh.service", "service"));
  EXPECT_LE(resolver.cached(), 8u);
}

/// The real v2 hierarchy of this host: a cgroup made by the test resolves by its inode number,
/// which is the id bpf_get_current_cgroup_id() reports.
TEST(CgroupResolver, RealHierarchyResolvesByInode) {
  if (::geteuid() != 0) GTEST_SKIP() << "creating a cgroup needs root";
  HostPaths host;
  auto root = find_cgroup2_root(host);
  if (!root) GTEST_SKIP() << "no cgroup v2 hierarchy on this host (pure v1)";
  std::string group = "wattprobe-test-" + std::to_string(::getpid());
  fs::path dir = *root / group / "foo.service";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) GTEST_SKIP() << "cannot create " << dir << ": " << ec.message();
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);

  CgroupResolver resolver(host);
  EXPECT_EQ(resolver.resolve_id(st.st_ino), id("foo.service", "service"));
  EXPECT_EQ(resolver.path_of(st.st_ino), "/" + group + "/foo.service");

  fs::remove(dir, ec);
  fs::remove(*root / group, ec);
}

}  // namespace
}  // namespace wattprobe
