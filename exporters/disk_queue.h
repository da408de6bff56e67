#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

struct DiskQueueOptions {
  /// Folder of the segment files, e.g. <state-dir>/remote-write. Created when missing.
  std::filesystem::path dir;
  /// Bound on the queued (not yet acknowledged) record bytes, headers included. Past it the
  /// oldest records are dropped and their samples counted.
  std::size_t max_bytes = std::size_t{64} << 20;
  /// A segment is closed and a new one begun past this size; a segment file is deleted once
  /// every record in it is acknowledged or dropped, so disk use overshoots `max_bytes` by at
  /// most one segment. Clamped to max_bytes / 4 so dropping frees space in steps that fit.
  std::size_t segment_bytes = std::size_t{4} << 20;
  /// fsync the segment after every append (one per tick): a power cut then loses nothing that
  /// `append` returned for. Off: fsync only when a segment is closed and at shutdown.
  bool fsync_each_append = true;
};

/// What `peek` hands the sender: consecutive records, oldest first.
struct QueueBatch {
  std::vector<std::string> payloads;
  std::size_t samples = 0;
  /// Pass to `ack` once the receiver has them.
  uint64_t end_seq = 0;
  bool empty() const { return payloads.empty(); }
};

struct DiskQueueStats {
  std::size_t records = 0;
  std::size_t samples = 0;
  std::size_t bytes = 0;  // queued record bytes, headers included
  uint64_t dropped_samples_queue_full = 0;
  /// Records found damaged (torn by a crash mid-append, or bit rot) and skipped, and the
  /// samples they declared when their header was still readable.
  uint64_t corrupt_records = 0;
  uint64_t corrupt_samples = 0;
};

/// A bounded, crash-safe FIFO of opaque records (each a compressed batch of samples from one
/// tick), kept in segment files `<id>.seg` plus a `cursor` file naming the first unacknowledged
/// byte. Records come back in append order, also after a restart; a record is removed only by
/// `ack` (after the receiver said 2xx) or by the bound. Delivery is at least once: a crash
/// between a send and the cursor update sends that batch again, which a Prometheus receiver
/// accepts (identical sample, same timestamp).
///
/// Record layout, little endian: u32 magic "WPQ1", u32 payload length, u32 sample count,
/// u32 CRC-32 of the previous two fields and the payload, then the payload.
///
/// Thread-safe: the sampling thread appends while the sender thread peeks and acknowledges.
class DiskQueue {
 public:
  /// Opens or creates the queue and replays what an earlier run left unacknowledged. Damaged
  /// records are counted and skipped (a torn tail is cut off), never fatal.
  static Result<std::unique_ptr<DiskQueue>> open(DiskQueueOptions options);
  ~DiskQueue();
  DiskQueue(const DiskQueue&) = delete;
  DiskQueue& operator=(const DiskQueue&) = delete;

  /// Appends one record, dropping the oldest records first when the bound needs room. Fails
  /// (and stores nothing) on a write error or a record bigger than the whole bound.
  Result<bool> append(std::string_view payload, uint32_t samples);
  /// The oldest records, up to `max_samples` samples in all but always at least one record
  /// when the queue is not empty. Does not remove them.
  QueueBatch peek(std::size_t max_samples);
  /// Removes every record before `end_seq` (from a QueueBatch) that is still queued; records
  /// the bound dropped meanwhile are simply gone already.
  void ack(uint64_t end_seq);
  /// fsyncs the open segment (for shutdown when fsync_each_append is off).
  void sync();

  DiskQueueStats stats() const;
  const DiskQueueOptions& options() const { return options_; }

 private:
  struct Record {
    uint64_t seq;
    uint64_t segment;
    uint64_t offset;
    uint32_t size;  // header + payload
    uint32_t samples;
  };

  explicit DiskQueue(DiskQueueOptions options);
  Result<bool> replay();
  void replay_segment(uint64_t id, uint64_t cursor_segment, uint64_t cursor_offset);
  Result<bool> rotate();
  void drop_front_locked(std::size_t count, bool overflow);
  void persist_cursor_locked();
  void delete_consumed_segments_locked();
  std::filesystem::path segment_path(uint64_t id) const;

  DiskQueueOptions options_;
  mutable std::mutex mu_;
  std::deque<Record> records_;
  std::size_t queued_bytes_ = 0;
  std::size_t queued_samples_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<uint64_t> segments_;  // ids of segment files on disk, ascending
  int write_fd_ = -1;
  uint64_t write_segment_ = 0;
  uint64_t write_offset_ = 0;
  uint64_t dropped_queue_full_ = 0;
  uint64_t corrupt_records_ = 0;
  uint64_t corrupt_samples_ = 0;
};

/// CRC-32 (IEEE 802.3, the zlib one), continuing from `crc`.
uint32_t crc32_update(uint32_t crc, std::string_view data);

}  // namespace wattprobe
