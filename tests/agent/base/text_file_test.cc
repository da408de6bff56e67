#include "agent/base/text_file.h"

#include <gtest/gtest.h>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

TEST(TextFile, ParsesSysfsIntegerWithNewline) {
  auto v = parse_u64("262143328850\n", "/x");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 262143328850u);
}

TEST(TextFile, RejectsGarbageNegativeEmptyAndOverflowNamingThePath) {
  for (std::string_view bad : {"", "\n", "abc", "-5", "12abc", "99999999999999999999999"}) {
    auto v = parse_u64(bad, "/sys/class/powercap/intel-rapl:0/energy_uj");
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.error().kind, ErrorKind::malformed);
    EXPECT_NE(v.error().message().find("intel-rapl:0/energy_uj"), std::string::npos);
  }
}

TEST(TextFile, MissingFileIsAbsent) {
  testing::TempTree tree;
  auto v = read_u64(tree.path("sys/nothing"));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error().kind, ErrorKind::absent);
}

TEST(TextFile, ParseDoubleRejectsNonFinite) {
  EXPECT_TRUE(parse_double("2.3283064365386962890625e-10\n", "/x").ok());
  EXPECT_FALSE(parse_double("nan", "/x").ok());
  EXPECT_FALSE(parse_double("1e999", "/x").ok());
  EXPECT_FALSE(parse_double("1.5W", "/x").ok());
}

}  // namespace
}  // namespace wattprobe
