#include "exporters/disk_queue.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

namespace fs = std::filesystem;

// Each record's payload names its tick, so order and identity are checked by value.
std::string tick_payload(int tick, std::size_t size = 40) {
  std::string p = "tick-" + std::to_string(tick) + ":";
  p.resize(size, 'x');
  return p;
}

std::unique_ptr<DiskQueue> open_queue(const fs::path& dir, std::size_t max_bytes = 1 << 20,
                                      std::size_t segment_bytes = 4 << 20, bool fsync = true) {
  auto q = DiskQueue::open(DiskQueueOptions{dir, max_bytes, segment_bytes, fsync});
  EXPECT_TRUE(q.ok()) << (q.ok() ? "" : q.error().message());
  return q.ok() ? std::move(q.value()) : nullptr;
}

std::vector<std::string> drain_all(DiskQueue& q) {
  auto batch = q.peek(SIZE_MAX);
  return batch.payloads;
}

std::vector<fs::path> segments(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".seg") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t disk_bytes(const fs::path& dir) {
  std::size_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) total += fs::file_size(e.path());
  return total;
}

TEST(DiskQueue, ReturnsRecordsInAppendOrderAndForgetsAcknowledgedOnes) {
  testing::TempTree tmp;
  auto q = open_queue(tmp.path("rw"));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q->append(tick_payload(i), 3).ok());
  EXPECT_EQ(q->stats().records, 5u);
  EXPECT_EQ(q->stats().samples, 15u);
  EXPECT_EQ(q->stats().bytes, 5u * (16 + 40));

  auto batch = q->peek(SIZE_MAX);
  ASSERT_EQ(batch.payloads.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(batch.payloads[i], tick_payload(i));
  EXPECT_EQ(batch.samples, 15u);

  q->ack(batch.end_seq);
  EXPECT_EQ(q->stats().records, 0u);
  EXPECT_EQ(q->stats().bytes, 0u);
  EXPECT_TRUE(q->peek(100).empty());
  EXPECT_EQ(q->stats().dropped_samples_queue_full, 0u);
}

TEST(DiskQueue, PeekStopsAtTheSampleLimitButAlwaysGivesOneRecord) {
  testing::TempTree tmp;
  auto q = open_queue(tmp.path("rw"));
  ASSERT_TRUE(q->append(tick_payload(0), 50).ok());
  ASSERT_TRUE(q->append(tick_payload(1), 50).ok());
  ASSERT_TRUE(q->append(tick_payload(2), 50).ok());

  auto one = q->peek(10);  // smaller than a record: still one record, or nothing would move
  ASSERT_EQ(one.payloads.size(), 1u);
  EXPECT_EQ(one.payloads[0], tick_payload(0));

  auto two = q->peek(120);
  ASSERT_EQ(two.payloads.size(), 2u);
  EXPECT_EQ(two.samples, 100u);
  q->ack(two.end_seq);
  EXPECT_EQ(drain_all(*q), std::vector<std::string>{tick_payload(2)});
}

TEST(DiskQueue, RestartReplaysOnlyWhatWasNotAcknowledgedInOrder) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  {
    auto q = open_queue(dir);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(q->append(tick_payload(i), 1).ok());
    q->ack(q->peek(4).end_seq);  // ticks 0..3 delivered
    auto unacked = q->peek(3);   // sent, but the agent dies before the 2xx: must come back
    EXPECT_EQ(unacked.payloads.size(), 3u);
  }
  auto q = open_queue(dir);
  EXPECT_EQ(q->stats().records, 6u);
  ASSERT_TRUE(q->append(tick_payload(10), 1).ok());
  std::vector<std::string> want;
  for (int i = 4; i <= 10; ++i) want.push_back(tick_payload(i));
  EXPECT_EQ(drain_all(*q), want);
}

TEST(DiskQueue, OrderHoldsAcrossManySegmentsAndRestarts) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  int next_expected = 0;
  int next_tick = 0;
  for (int run = 0; run < 5; ++run) {
    auto q = open_queue(dir, 1 << 20, 300);  // ~5 records per segment: many rotations
    for (int i = 0; i < 23; ++i) ASSERT_TRUE(q->append(tick_payload(next_tick++), 2).ok());
    for (int round = 0; round < 3; ++round) {
      auto batch = q->peek(8);
      for (const auto& p : batch.payloads) EXPECT_EQ(p, tick_payload(next_expected++));
      q->ack(batch.end_seq);
    }
  }
  auto q = open_queue(dir, 1 << 20, 300);
  for (const auto& p : drain_all(*q)) EXPECT_EQ(p, tick_payload(next_expected++));
  EXPECT_EQ(next_expected, next_tick);
  q->ack(q->peek(SIZE_MAX).end_seq);
  // Acknowledged segments are deleted, not kept around.
  EXPECT_LE(segments(dir).size(), 1u);
}

TEST(DiskQueue, PastTheBoundTheOldestAreDroppedAndCounted) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  // Records are 16 + 100 bytes: a 1000-byte bound holds 8 of them.
  auto q = open_queue(dir, 1000, 4 << 20);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(q->append(tick_payload(i, 100), 10).ok());
  auto s = q->stats();
  EXPECT_EQ(s.records, 8u);
  EXPECT_EQ(s.bytes, 8u * 116);
  EXPECT_EQ(s.samples, 80u);
  EXPECT_EQ(s.dropped_samples_queue_full, 120u);
  std::vector<std::string> want;
  for (int i = 12; i < 20; ++i) want.push_back(tick_payload(i, 100));
  EXPECT_EQ(drain_all(*q), want);
  // Disk use stays within the bound plus one segment (segment size is clamped to bound / 4).
  EXPECT_LE(disk_bytes(dir), 1000u + 250u + 64u);
}

TEST(DiskQueue, ARecordBiggerThanTheWholeBoundIsRefused) {
  testing::TempTree tmp;
  auto q = open_queue(tmp.path("rw"), 100);
  ASSERT_TRUE(q->append(tick_payload(0, 20), 1).ok());
  auto r = q->append(std::string(200, 'y'), 5);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().kind, ErrorKind::malformed);
  EXPECT_EQ(drain_all(*q), std::vector<std::string>{tick_payload(0, 20)});
}

TEST(DiskQueue, TornLastRecordAfterACrashIsDetectedAndSkipped) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  {
    auto q = open_queue(dir);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->append(tick_payload(i), 7).ok());
  }
  // A crash in the middle of write(2): the last record lost its last 5 bytes.
  auto seg = segments(dir);
  ASSERT_EQ(seg.size(), 1u);
  fs::resize_file(seg[0], fs::file_size(seg[0]) - 5);
  {
    auto q = open_queue(dir);
    auto s = q->stats();
    EXPECT_EQ(s.records, 2u);
    EXPECT_EQ(s.corrupt_records, 1u);
    ASSERT_TRUE(q->append(tick_payload(3), 7).ok());
    EXPECT_EQ(drain_all(*q),
              (std::vector<std::string>{tick_payload(0), tick_payload(1), tick_payload(3)}));
  }
  // The torn tail was cut off, so the next start finds a clean queue.
  auto q = open_queue(dir);
  EXPECT_EQ(q->stats().corrupt_records, 0u);
  EXPECT_EQ(q->stats().records, 3u);
}

TEST(DiskQueue, ABitFlipInOneRecordSkipsOnlyThatRecord) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  {
    auto q = open_queue(dir);
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(q->append(tick_payload(i), 4).ok());
  }
  auto seg = segments(dir);
  ASSERT_EQ(seg.size(), 1u);
  {
    std::fstream f(seg[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(56 + 16 + 10);  // inside the payload of the second record
    f.put('!');
  }
  auto q = open_queue(dir);
  auto s = q->stats();
  EXPECT_EQ(s.corrupt_records, 1u);
  EXPECT_EQ(s.corrupt_samples, 4u);
  EXPECT_EQ(drain_all(*q), (std::vector<std::string>{tick_payload(0), tick_payload(2)}));
}

TEST(DiskQueue, GarbageHeaderCutsTheRestOfItsSegmentOnly) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  {
    auto q = open_queue(dir, 1 << 20, 120);  // two records per segment
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(q->append(tick_payload(i), 1).ok());
  }
  auto seg = segments(dir);
  ASSERT_EQ(seg.size(), 2u);
  {
    std::fstream f(seg[0], std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(56);  // the magic of the second record
    f.write("JUNK", 4);
  }
  auto q = open_queue(dir, 1 << 20, 120);
  EXPECT_EQ(q->stats().corrupt_records, 1u);
  EXPECT_EQ(drain_all(*q),
            (std::vector<std::string>{tick_payload(0), tick_payload(2), tick_payload(3)}));
}

TEST(DiskQueue, AnUnreadableCursorReplaysEverythingRatherThanLosingIt) {
  testing::TempTree tmp;
  fs::path dir = tmp.path("rw");
  {
    auto q = open_queue(dir);
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(q->append(tick_payload(i), 1).ok());
    q->ack(q->peek(2).end_seq);
  }
  std::ofstream(dir / "cursor") << "12 banana\n";
  auto q = open_queue(dir);
  EXPECT_EQ(q->stats().records, 4u);
}

TEST(DiskQueue, ConcurrentAppendAndAcknowledgeKeepOrderAndCount) {
  testing::TempTree tmp;
  // fsync off: this is about locking, and 2000 fsyncs would only measure the disk.
  auto q = open_queue(tmp.path("rw"), 1 << 20, 4096, false);
  constexpr int kTicks = 2000;
  std::thread producer([&] {
    for (int i = 0; i < kTicks; ++i) ASSERT_TRUE(q->append(tick_payload(i), 1).ok());
  });
  int next = 0;
  while (next < kTicks) {
    auto batch = q->peek(37);
    for (const auto& p : batch.payloads) ASSERT_EQ(p, tick_payload(next++));
    q->ack(batch.end_seq);
  }
  producer.join();
  EXPECT_EQ(q->stats().records, 0u);
  EXPECT_EQ(q->stats().dropped_samples_queue_full, 0u);
}

}  // namespace
}  // namespace wattprobe
