#include "collectors/units/unit_reader.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

struct Textfile {
  testing::TempTree tree;
  std::string path = tree.path("units.prom").string();
  void write(const std::string& text) const { std::ofstream(path) << text; }
};

UnitSpec spec(const std::string& path, const std::string& counter = "jobs_total") {
  UnitSpec s;
  s.name = "jobs";
  s.url = path;
  s.counter = counter;
  s.workload = "batch.service";
  return s;
}

TEST(UnitReader, CountsFromTheFirstReadAndKeepsTheLastGoodTotalPerReason) {
  Textfile f;
  UnitReader reader(spec(f.path), {.timeout_s = 1, .max_body_bytes = 4096});
  f.write("# TYPE jobs_total counter\njobs_total{queue=\"a\"} 40\njobs_total{queue=\"b\"} 2\n");
  reader.read_once();
  EXPECT_TRUE(reader.latest().good);
  EXPECT_DOUBLE_EQ(reader.latest().total, 0);
  f.write("# TYPE jobs_total counter\njobs_total{queue=\"a\"} 45\njobs_total{queue=\"b\"} 4\n");
  reader.read_once();
  EXPECT_DOUBLE_EQ(reader.latest().total, 7);

  struct Bad {
    std::string text;
    std::string reason;
  };
  const Bad bad[] = {
      {"jobs_total{queue=\"a\" 46\n", "malformed"},
      {"# TYPE other_total counter\nother_total 1\n", "missing_counter"},
      {"# TYPE jobs_total gauge\njobs_total 99\n", "not_counter"},
      {std::string(5000, '#') + "\n", "too_large"},
  };
  for (const Bad& b : bad) {
    f.write(b.text);
    reader.read_once();
    UnitReading r = reader.latest();
    EXPECT_EQ(r.failing, b.reason) << r.detail;
    EXPECT_TRUE(r.good);
    EXPECT_DOUBLE_EQ(r.total, 7) << b.reason;
    EXPECT_EQ(reader.errors().at(b.reason), 1u) << b.reason;
  }
  std::filesystem::remove(f.path);
  reader.read_once();
  EXPECT_EQ(reader.latest().failing, "unreachable");
  EXPECT_NE(reader.latest().detail.find(f.path), std::string::npos) << reader.latest().detail;

  // The service restarted: queue a from 0, b went on.
  f.write("# TYPE jobs_total counter\njobs_total{queue=\"a\"} 3\njobs_total{queue=\"b\"} 5\n");
  reader.read_once();
  EXPECT_EQ(reader.latest().failing, "");
  EXPECT_DOUBLE_EQ(reader.latest().total, 11);
  EXPECT_EQ(reader.latest().resets, 1u);
  for (const char* reason : kUnitErrorReasons) EXPECT_TRUE(reader.errors().count(reason));
}

TEST(UnitReader, TheThreadReadsOnRequest) {
  Textfile f;
  f.write("jobs_total 1\n");
  UnitReader reader(spec(f.path));
  reader.start();
  reader.request();
  for (int i = 0; i < 500 && reader.latest().reads == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(reader.latest().good);
  reader.stop();
}

}  // namespace
}  // namespace wattprobe
