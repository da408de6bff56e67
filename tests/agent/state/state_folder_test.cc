#include "agent/state/state_folder.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;
using testing::TempTree;

namespace fs = std::filesystem;

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

uid_t owner_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_uid;
}

TEST(StateFolder, CreatesAMissingFolderPrivateToItsOwner) {
  TempTree tree;
  const fs::path dir = tree.path("var/lib/wattprobe");
  auto line = prepare_state_folder(dir, std::nullopt);
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_EQ(mode_of(dir), 0700u);
  EXPECT_THAT(*line, HasSubstr("mode 0700 (created)"));
}

TEST(StateFolder, RefusesAGroupOrWorldWritableFolder) {
  TempTree tree;
  for (auto [mode, who] : {std::pair{0777, "every user"}, std::pair{0770, "its group"}}) {
    const fs::path dir = tree.path("state-" + std::to_string(mode));
    fs::create_directories(dir);
    ASSERT_EQ(::chmod(dir.c_str(), static_cast<mode_t>(mode)), 0);
    auto line = prepare_state_folder(dir, std::nullopt);
    ASSERT_FALSE(line.ok()) << who;
    EXPECT_EQ(line.error().kind, ErrorKind::unsupported);
    EXPECT_THAT(line.error().detail, HasSubstr(std::string("is writable by ") + who));
    EXPECT_THAT(line.error().detail, HasSubstr("chmod 0700 " + dir.string()));
  }
}

TEST(StateFolder, RefusesAFileInPlaceOfTheFolder) {
  TempTree tree;
  tree.write("state", "");
  auto line = prepare_state_folder(tree.path("state"), std::nullopt);
  ASSERT_FALSE(line.ok());
  EXPECT_THAT(line.error().detail, HasSubstr("is not a folder"));
}

class StateFolderAsRoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to own and hand over folders";
    // The tree must be passable by the user the folder is handed to, as /var/lib is.
    ASSERT_EQ(::chmod(tree.root().c_str(), 0755), 0);
  }
  TempTree tree;
  StateOwner nobody{65534, 65534, "nobody"};
};

TEST_F(StateFolderAsRoot, HandsARootFolderOfWattprobesOwnFilesToTheUserItWillRunAs) {
  const fs::path dir = tree.path("state");
  fs::create_directories(dir / "ledger");
  std::ofstream(dir / "checkpoint.pb") << "x";
  std::ofstream(dir / "ledger/2026-11-27.jsonl") << "{}\n";
  fs::create_directories(dir / "otlp");  // an OTLP queue a run as root left (issue 25)
  std::ofstream(dir / "otlp/cursor") << "0 0\n";
  fs::create_directories(dir / "jobs");  // job records a run as root wrote (issue 29)
  std::ofstream(dir / "jobs/2026-11-27.jsonl") << "{}\n";
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  auto checked = check_state_folder(dir, nobody);
  ASSERT_TRUE(checked.ok()) << checked.error().message();
  EXPECT_THAT(*checked, HasSubstr("to be handed to nobody"));
  EXPECT_EQ(owner_of(dir), 0u) << "a check changes nothing";
  auto line = prepare_state_folder(dir, nobody);
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_THAT(*line, HasSubstr("handed from root to nobody"));
  for (const fs::path& p :
       {dir, dir / "ledger", dir / "checkpoint.pb", dir / "ledger/2026-11-27.jsonl", dir / "otlp",
        dir / "otlp/cursor", dir / "jobs", dir / "jobs/2026-11-27.jsonl"}) {
    EXPECT_EQ(owner_of(p), 65534u) << p;
  }
}

// Issue 25: a folder the user already owns, where a run as root left its OTLP queue (root's,
// 0700): the queue is handed over too, so the agent can write it once it drops; anything
// wattprobe does not write stays root's.
TEST_F(StateFolderAsRoot, HandsOverWhatARootRunLeftInTheUsersFolder) {
  const fs::path dir = tree.path("state");
  fs::create_directories(dir / "otlp");
  std::ofstream(dir / "otlp/00000000000000000001.seg") << "x";
  std::ofstream(dir / "notes") << "mine";
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  ASSERT_EQ(::chmod((dir / "otlp").c_str(), 0700), 0);
  ASSERT_EQ(::chown(dir.c_str(), 65534, 65534), 0);
  auto line = prepare_state_folder(dir, nobody);
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_THAT(*line, HasSubstr("1 of root's entries handed to nobody"));
  EXPECT_EQ(owner_of(dir / "otlp"), 65534u);
  EXPECT_EQ(owner_of(dir / "otlp/00000000000000000001.seg"), 65534u);
  EXPECT_EQ(owner_of(dir / "notes"), 0u);
}

// Issue 25: a link in place of the folder, or in it (wattprobe writes none), is refused before
// anything changes: not followed, nothing handed over.
TEST_F(StateFolderAsRoot, RefusesLinksBeforeChangingAnything) {
  const fs::path real = tree.path("real");
  fs::create_directories(real);
  ASSERT_EQ(::chmod(real.c_str(), 0700), 0);
  fs::create_directory_symlink(real, tree.path("state-link"));
  for (auto check : {&check_state_folder, &prepare_state_folder}) {
    auto line = check(tree.path("state-link"), nobody);
    ASSERT_FALSE(line.ok());
    EXPECT_THAT(line.error().detail, HasSubstr("is a symbolic link to " + real.string()));
    EXPECT_THAT(line.error().detail, HasSubstr("refusing to follow it"));
  }
  EXPECT_EQ(owner_of(real), 0u);

  const fs::path dir = tree.path("state");
  fs::create_directories(dir / "ledger");
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  fs::create_symlink("/etc/passwd", dir / "checkpoint.pb.prev");
  auto line = prepare_state_folder(dir, nobody);
  ASSERT_FALSE(line.ok());
  EXPECT_THAT(line.error().detail, HasSubstr("checkpoint.pb.prev is a symbolic link"));
  EXPECT_EQ(owner_of(dir), 0u);
  EXPECT_EQ(owner_of(dir / "ledger"), 0u);
  EXPECT_EQ(owner_of("/etc/passwd"), 0u);
}

TEST_F(StateFolderAsRoot, NeverHandsOverARootFolderHoldingOtherFiles) {
  const fs::path dir = tree.path("lib");
  fs::create_directories(dir / "dpkg");
  auto line = prepare_state_folder(dir, nobody);
  ASSERT_FALSE(line.ok());
  EXPECT_THAT(line.error().detail, HasSubstr("holds dpkg, which wattprobe does not write"));
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

TEST_F(StateFolderAsRoot, RefusesAFolderOfAnotherUserOrOneTheUserCannotReach) {
  const fs::path other = tree.path("other");
  fs::create_directories(other);
  ASSERT_EQ(::chown(other.c_str(), 4242, 4242), 0);
  auto line = prepare_state_folder(other, nobody);
  ASSERT_FALSE(line.ok());
  EXPECT_THAT(line.error().detail, HasSubstr("is owned by uid 4242, not root or"));

  const fs::path hidden = tree.path("private/state");
  fs::create_directories(hidden);
  ASSERT_EQ(::chmod(tree.path("private").c_str(), 0700), 0);
  line = prepare_state_folder(hidden, nobody);
  ASSERT_FALSE(line.ok());
  EXPECT_THAT(line.error().detail, HasSubstr("cannot be reached by nobody"));
  EXPECT_THAT(line.error().detail, HasSubstr(tree.path("private").string() + " (mode 0700"));
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

// --guest-energy-dir: handed to the run user with the VM folders a run as root left, a VM
// folder holding anything else is refused, and a folder others may write is refused outright.
TEST_F(StateFolderAsRoot, TheGuestEnergyFolderIsHandedOverWithItsVmFoldersOnly) {
  const fs::path dir = tree.path("guests");
  fs::create_directories(dir / "web1");
  std::ofstream(dir / "web1/energy.json") << "{}";
  auto line = prepare_guest_energy_folder(dir, nobody);
  ASSERT_TRUE(line.ok()) << line.error().message();
  EXPECT_THAT(*line, HasSubstr("handed from root to nobody"));
  for (const fs::path& p : {dir, dir / "web1", dir / "web1/energy.json"}) {
    struct stat st {};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u) << p;
  }

  const fs::path other = tree.path("srv");
  fs::create_directories(other / "www");
  std::ofstream(other / "www/index.html") << "hi";
  auto refused = prepare_guest_energy_folder(other, nobody);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.error().message(), HasSubstr("is not a VM folder wattprobe wrote"));
  struct stat st {};
  ASSERT_EQ(::stat(other.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);

  const fs::path open = tree.path("open");
  fs::create_directories(open);
  ASSERT_EQ(::chmod(open.c_str(), 0777), 0);
  auto writable = prepare_guest_energy_folder(open, nobody);
  ASSERT_FALSE(writable.ok());
  EXPECT_THAT(writable.error().message(), HasSubstr("writable by its group or by everyone"));
}

}  // namespace
}  // namespace wattprobe
