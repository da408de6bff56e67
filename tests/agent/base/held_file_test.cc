#include "agent/base/held_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;

TEST(HeldFile, SeesEachInPlaceRewriteFromOffsetZero) {
  TempTree tree;
  tree.write("energy_uj", "123\n");
  auto held = HeldFile::open(tree.path("energy_uj"));
  ASSERT_TRUE(held.ok()) << held.error().message();
  EXPECT_EQ(*held->read(), "123\n");
  testing::write_file_in_place(tree.path("energy_uj"), "4567\n");
  EXPECT_EQ(*held->read(), "4567\n");
  testing::write_file_in_place(tree.path("energy_uj"), "8\n");
  EXPECT_EQ(*held->read(), "8\n");
  HeldFile copy = *held;  // shares the descriptor; reads do not move each other
  EXPECT_EQ(*copy.read(), "8\n");
  EXPECT_EQ(*held->read(), "8\n");
}

TEST(HeldFile, AFileRemovedOrReplacedSinceOpeningIsAbsentNotStale) {
  TempTree tree;
  tree.write("a", "1\n");
  tree.write("b", "2\n");
  auto a = HeldFile::open(tree.path("a"));
  auto b = HeldFile::open(tree.path("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  std::filesystem::remove(tree.path("a"));
  testing::write_file_atomically(tree.path("b"), "3\n");  // a new file under the old name
  for (const HeldFile* f : {&*a, &*b}) {
    auto text = f->read();
    ASSERT_FALSE(text.ok()) << f->path();
    EXPECT_EQ(text.error().kind, ErrorKind::absent);
    EXPECT_NE(text.error().message().find("removed since it was opened"), std::string::npos);
  }
}

TEST(HeldFile, OpenNamesThePathAndTheReasonAndReadRefusesOversizedText) {
  TempTree tree;
  auto missing = HeldFile::open(tree.path("none"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::absent);
  EXPECT_EQ(missing.error().path, tree.path("none").string());
  tree.write("big", std::string(300, '7'));
  auto big = HeldFile::open(tree.path("big"));
  ASSERT_TRUE(big.ok());
  auto text = big->read(256);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.error().kind, ErrorKind::malformed);
  EXPECT_FALSE(HeldFile().read().ok());
}

}  // namespace
}  // namespace wattprobe
