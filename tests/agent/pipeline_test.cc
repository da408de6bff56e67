// The pipeline as `run` builds it, on a driven powercap tree: every sink, the daemon's own (from
// the sink table) and the caller's, is started, handed every snapshot after its tick, adds its
// families, and is stopped in two halves; the pipeline names none of them.

#include "agent/pipeline.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fake_sysfs.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::PowercapDriver;
using testing::SysfsWriter;
using testing::TempTree;

/// A caller's sink that records what the pipeline did with it.
class RecordingSink : public SnapshotSink {
 public:
  void on_snapshot(const SnapshotPtr& s) override {
    snapshots.push_back(s);
    ++on_snapshot_calls;
  }
  void append_families(std::vector<Family>& out) const override {
    ++append_calls;
    out.push_back({"test_sink_families",
                   "Added by the test's sink.",
                   MetricType::gauge,
                   {{{}, static_cast<double>(snapshots.size())}}});
  }
  void begin_stop() override { ++begin_stops; }
  void finish_stop() override { ++finish_stops; }

  std::vector<SnapshotPtr> snapshots;
  int on_snapshot_calls = 0;
  mutable int append_calls = 0;
  int begin_stops = 0;
  int finish_stops = 0;
};

/// A powercap tree advanced by a thread of its own, as the hardware would, with the real
/// cgroup and CPU folders linked in (the procfs accounting reads them).
class DrivenTree {
 public:
  DrivenTree() : driver_(SysfsWriter(tree_), testing::one_socket()) {
    driver_.set_domain_watts("package", 40);
    for (const char* rel : {"sys/fs", "sys/devices/system"}) {
      std::filesystem::create_directories((tree_.root() / rel).parent_path());
      std::filesystem::create_symlink(std::filesystem::path("/") / rel, tree_.root() / rel);
    }
    thread_ = std::thread([this] {
      while (!stop_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        driver_.advance(0.01);
      }
    });
  }
  ~DrivenTree() {
    stop_ = true;
    thread_.join();
  }
  Options options() const {
    Options o;
    o.paths = tree_.paths();
    o.paths.procfs_root = "/";
    o.sources = {"rapl_powercap"};
    o.accounting = "procfs";
    o.interval = std::chrono::milliseconds(100);
    o.max_ticks = 4;
    o.state_dir = tree_.root() / "state";
    o.ledger.state_dir = o.state_dir;
    return o;
  }
  const TempTree& tree() const { return tree_; }

 private:
  TempTree tree_;
  PowercapDriver driver_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::vector<std::string> lines;
void log_line(const std::string& l) { lines.push_back(l); }

bool has_family(const Snapshot& s, std::string_view name) {
  for (const Family& f : s.families) {
    if (f.name == name) return true;
  }
  return false;
}

TEST(Pipeline, EverySinkGetsEveryTickAddsItsFamiliesAndStopsInTwoHalves) {
  DrivenTree host;
  Options o = host.options();
  auto built = Pipeline::build(o, PipelineRole::daemon, log_line);
  ASSERT_TRUE(built.ok()) << built.error().message();
  Pipeline& p = **built;
  RecordingSink sink;
  p.add_sink(&sink);
  ASSERT_TRUE(p.start(log_line).ok());
  p.run(log_line);
  p.begin_stop();
  p.finish(log_line);

  ASSERT_EQ(sink.on_snapshot_calls, 4);
  EXPECT_GE(sink.append_calls, 4);
  EXPECT_EQ(sink.begin_stops, 1);
  // A caller's sink is finished by its caller, not by the pipeline.
  EXPECT_EQ(sink.finish_stops, 0);
  // What it was handed is what the pipeline publishes, with the sink's own family in it.
  EXPECT_EQ(sink.snapshots.back(), p.snapshot());
  for (const SnapshotPtr& s : sink.snapshots) {
    EXPECT_TRUE(has_family(*s, "test_sink_families"));
    EXPECT_TRUE(has_family(*s, "wattprobe_node_energy_joules_total"));
  }
  // Snapshots are immutable and new each tick.
  EXPECT_NE(sink.snapshots[0], sink.snapshots[1]);
  EXPECT_LT(sink.snapshots[0]->timestamp_ms, sink.snapshots[3]->timestamp_ms + 1);
}

TEST(Pipeline, TheDaemonsSinksComeFromTheTableAndStartAfterBuild) {
  DrivenTree host;
  Options o = host.options();
  o.guest_energy.dir = host.tree().root() / "guests";
  auto built = Pipeline::build(o, PipelineRole::daemon, log_line);
  ASSERT_TRUE(built.ok()) << built.error().message();
  // Built but not started: the guest folder is made by start(), after the privilege drop.
  EXPECT_FALSE(std::filesystem::exists(o.guest_energy.dir));
  ASSERT_TRUE((*built)->start(log_line).ok());
  EXPECT_TRUE(std::filesystem::is_directory(o.guest_energy.dir));
  (*built)->run(log_line);
  SnapshotPtr last = (*built)->snapshot();
  ASSERT_NE(last, nullptr);
  EXPECT_TRUE(has_family(*last, "wattprobe_guest_energy_vms"));
  (*built)->begin_stop();
  (*built)->finish(log_line);
}

TEST(Pipeline, StandaloneHasNoDaemonSinks) {
  DrivenTree host;
  Options o = host.options();
  o.guest_energy.dir = host.tree().root() / "guests";
  auto built = Pipeline::build(o, PipelineRole::standalone, log_line);
  ASSERT_TRUE(built.ok()) << built.error().message();
  ASSERT_TRUE((*built)->start(log_line).ok());
  (*built)->run(log_line);
  EXPECT_FALSE(std::filesystem::exists(o.guest_energy.dir));
  EXPECT_FALSE(has_family(*(*built)->snapshot(), "wattprobe_guest_energy_vms"));
}

TEST(Pipeline, ASinkThatCannotStartStopsTheStartWithItsName) {
  DrivenTree host;
  Options o = host.options();
  // A file where the guest folder should be: the sink cannot open it.
  const std::filesystem::path blocker = host.tree().root() / "not-a-folder";
  { std::ofstream(blocker) << "x"; }
  o.guest_energy.dir = blocker;
  auto built = Pipeline::build(o, PipelineRole::daemon, log_line);
  ASSERT_TRUE(built.ok()) << built.error().message();
  auto started = (*built)->start(log_line);
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.error().detail.find("--guest-energy-dir"), std::string::npos)
      << started.error().detail;
}

}  // namespace
}  // namespace wattprobe
