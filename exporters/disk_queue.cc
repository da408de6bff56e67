#include "exporters/disk_queue.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "agent/base/log.h"
#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

constexpr uint32_t kMagic = 0x31515057;  // "WPQ1" little endian
constexpr std::size_t kHeaderBytes = 16;
// A record is one tick of one host; anything near this is a damaged length field.
constexpr uint32_t kMaxPayloadBytes = 64u << 20;
constexpr std::string_view kSegmentSuffix = ".seg";
constexpr std::string_view kCursorName = "cursor";

void put_u32(char* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

uint32_t get_u32(const char* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

uint32_t record_crc(uint32_t length, uint32_t samples, std::string_view payload) {
  char fields[8];
  put_u32(fields, length);
  put_u32(fields + 4, samples);
  return crc32_update(crc32_update(0, std::string_view(fields, 8)), payload);
}

bool write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

bool pread_all(int fd, char* data, std::size_t size, uint64_t offset) {
  while (size > 0) {
    ssize_t n = ::pread(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<std::size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

void fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// "<20 digits>.seg" → id; anything else is not ours to touch.
bool parse_segment_name(const std::string& name, uint64_t* id) {
  if (name.size() != 20 + kSegmentSuffix.size() || !name.ends_with(kSegmentSuffix)) return false;
  auto [end, ec] = std::from_chars(name.data(), name.data() + 20, *id);
  return ec == std::errc() && end == name.data() + 20;
}

// True when a record header's magic is right and its length fits in what the segment still
// holds, i.e. the next header's position can be trusted.
bool length_plausible(const char* header, uint64_t remaining) {
  if (remaining < kHeaderBytes || get_u32(header) != kMagic) return false;
  uint32_t length = get_u32(header + 4);
  return length <= kMaxPayloadBytes && remaining - kHeaderBytes >= length;
}

}  // namespace

uint32_t crc32_update(uint32_t crc, std::string_view data) {
  // zlib's CRC-32 (IEEE 802.3), the checksum the checkpoint uses too: the same polynomial the
  // queue has always written, so existing queues still read.
  return static_cast<uint32_t>(
      crc32_z(crc, reinterpret_cast<const Bytef*>(data.data()), data.size()));
}

DiskQueue::DiskQueue(DiskQueueOptions options) : options_(std::move(options)) {
  options_.segment_bytes =
      std::max<std::size_t>(kHeaderBytes, std::min(options_.segment_bytes, options_.max_bytes / 4));
}

DiskQueue::~DiskQueue() {
  std::lock_guard lock(mu_);
  if (write_fd_ >= 0) {
    ::fsync(write_fd_);
    ::close(write_fd_);
  }
}

Result<std::unique_ptr<DiskQueue>> DiskQueue::open(DiskQueueOptions options) {
  std::unique_ptr<DiskQueue> queue(new DiskQueue(std::move(options)));
  auto replayed = queue->replay();
  if (!replayed) return replayed.error();
  return queue;
}

std::filesystem::path DiskQueue::segment_path(uint64_t id) const {
  char name[32];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(id));
  return options_.dir / (std::string(name) + std::string(kSegmentSuffix));
}

Result<bool> DiskQueue::replay() {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec) return error_from_errno(ec.value(), options_.dir.string(), "creating the queue folder");

  // A missing cursor means nothing was ever acknowledged; an unreadable one is treated the same
  // way, trading duplicates (harmless to the receiver) for loss.
  uint64_t cursor_segment = 0, cursor_offset = 0;
  auto cursor_path = options_.dir / kCursorName;
  // A link in place of the cursor is not followed: the agent would read (and later replace)
  // what it points at.
  if (auto text = std::filesystem::is_symlink(cursor_path, ec)
                      ? Result<std::string>(
                            Error{ErrorKind::unsupported, cursor_path.string(), "a symbolic link"})
                      : read_text(cursor_path, 128);
      text.ok()) {
    std::string_view t = trim(*text);
    auto space = t.find(' ');
    auto seg = parse_u64(t.substr(0, space), cursor_path);
    auto off = parse_u64(space == std::string_view::npos ? "" : t.substr(space + 1), cursor_path);
    if (seg.ok() && off.ok()) {
      cursor_segment = *seg;
      cursor_offset = *off;
    } else {
      log_printf("remote-write queue: %s; replaying every segment",
                 (seg.ok() ? off.error() : seg.error()).message().c_str());
    }
  }

  std::vector<uint64_t> found;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
    std::string name = entry.path().filename().string();
    uint64_t id = 0;
    if (parse_segment_name(name, &id)) {
      found.push_back(id);
    } else if (name.ends_with(".tmp")) {
      std::filesystem::remove(entry.path(), ec);  // a cursor write the crash interrupted
    }
  }
  if (ec) return error_from_errno(ec.value(), options_.dir.string(), "listing the queue folder");
  std::sort(found.begin(), found.end());

  uint64_t next_segment = cursor_segment;
  for (uint64_t id : found) {
    next_segment = std::max(next_segment, id + 1);
    if (id < cursor_segment) {
      std::filesystem::remove(segment_path(id), ec);
      continue;
    }
    std::size_t before = records_.size();
    replay_segment(id, cursor_segment, cursor_offset);
    if (records_.size() == before) {
      std::filesystem::remove(segment_path(id), ec);
    } else {
      segments_.push_back(id);
    }
  }
  // Never append after a tail that may have been torn: new records start a new segment.
  write_segment_ = next_segment;
  write_offset_ = 0;

  std::lock_guard lock(mu_);
  std::size_t excess = 0;
  std::size_t bytes = queued_bytes_;
  while (excess < records_.size() && bytes > options_.max_bytes) bytes -= records_[excess++].size;
  if (excess > 0) drop_front_locked(excess, /*overflow=*/true);
  return true;
}

void DiskQueue::replay_segment(uint64_t id, uint64_t cursor_segment, uint64_t cursor_offset) {
  auto path = segment_path(id);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return;
  off_t end = ::lseek(fd, 0, SEEK_END);
  uint64_t size = end < 0 ? 0 : static_cast<uint64_t>(end);
  uint64_t offset = 0;
  std::string payload;
  while (offset < size) {
    char header[kHeaderBytes] = {};
    bool bad = true;
    uint32_t samples = 0;
    uint32_t length = 0;
    if (size - offset >= kHeaderBytes && pread_all(fd, header, kHeaderBytes, offset) &&
        get_u32(header) == kMagic) {
      length = get_u32(header + 4);
      samples = get_u32(header + 8);
      if (length <= kMaxPayloadBytes && size - offset - kHeaderBytes >= length) {
        payload.resize(length);
        if (pread_all(fd, payload.data(), length, offset + kHeaderBytes) &&
            record_crc(length, samples, payload) == get_u32(header + 12)) {
          bad = false;
        }
      }
    }
    if (bad && length_plausible(header, size - offset)) {
      // The header holds (magic and a length that fits) but the checksum does not: bit rot in
      // this record only. Skip it and keep the records after it.
      ++corrupt_records_;
      corrupt_samples_ += samples;
      log_printf(
          "remote-write queue: %s: record at byte %llu fails its "
          "checksum, skipped",
          path.c_str(), static_cast<unsigned long long>(offset));
      offset += kHeaderBytes + length;
      continue;
    }
    if (bad) {
      // A crash mid-append leaves a short or unchecked tail; past a damaged header no length
      // can be trusted, so the rest of this segment is cut off.
      ++corrupt_records_;
      log_printf(
          "remote-write queue: %s: damaged record at byte %llu, %llu bytes "
          "after it skipped",
          path.c_str(), static_cast<unsigned long long>(offset),
          static_cast<unsigned long long>(size - offset));
      if (::ftruncate(fd, static_cast<off_t>(offset)) == 0) ::fsync(fd);
      break;
    }
    uint32_t record_size = static_cast<uint32_t>(kHeaderBytes + length);
    bool acknowledged = id < cursor_segment || (id == cursor_segment && offset < cursor_offset);
    if (!acknowledged) {
      records_.push_back(Record{next_seq_++, id, offset, record_size, samples});
      queued_bytes_ += record_size;
      queued_samples_ += samples;
    }
    offset += record_size;
  }
  ::close(fd);
}

Result<bool> DiskQueue::rotate() {
  if (write_fd_ >= 0) {
    ::fsync(write_fd_);
    ::close(write_fd_);
    write_fd_ = -1;
  }
  // Never reopen a segment that holds records (O_TRUNC would destroy them).
  if (!segments_.empty() && segments_.back() >= write_segment_)
    write_segment_ = segments_.back() + 1;
  auto path = segment_path(write_segment_);
  int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return error_from_errno(errno, path.string(), "creating a queue segment");
  write_fd_ = fd;
  write_offset_ = 0;
  segments_.push_back(write_segment_);
  fsync_dir(options_.dir);
  return true;
}

Result<bool> DiskQueue::append(std::string_view payload, uint32_t samples) {
  std::size_t record_size = kHeaderBytes + payload.size();
  if (payload.size() > kMaxPayloadBytes || record_size > options_.max_bytes) {
    return Error{
        ErrorKind::malformed, options_.dir.string(),
        "record of " + std::to_string(record_size) + " bytes is larger than the queue bound"};
  }
  std::string record(kHeaderBytes, '\0');
  put_u32(record.data(), kMagic);
  put_u32(record.data() + 4, static_cast<uint32_t>(payload.size()));
  put_u32(record.data() + 8, samples);
  put_u32(record.data() + 12, record_crc(static_cast<uint32_t>(payload.size()), samples, payload));
  record.append(payload);

  std::lock_guard lock(mu_);
  std::size_t drop = 0;
  std::size_t bytes = queued_bytes_;
  while (drop < records_.size() && bytes + record_size > options_.max_bytes) {
    bytes -= records_[drop++].size;
  }
  if (drop > 0) drop_front_locked(drop, /*overflow=*/true);

  if (write_fd_ < 0 ||
      (write_offset_ > 0 && write_offset_ + record_size > options_.segment_bytes)) {
    auto rotated = rotate();
    if (!rotated) return rotated.error();
  }
  if (!write_all(write_fd_, record.data(), record.size())) {
    int err = errno;
    // Leave no partial record behind: the next append must start at a record boundary.
    if (::ftruncate(write_fd_, static_cast<off_t>(write_offset_)) != 0) {
      ::close(write_fd_);
      write_fd_ = -1;
    }
    return error_from_errno(err, segment_path(write_segment_).string(), "appending to the queue");
  }
  if (options_.fsync_each_append) ::fdatasync(write_fd_);
  records_.push_back(Record{next_seq_++, write_segment_, write_offset_,
                            static_cast<uint32_t>(record_size), samples});
  write_offset_ += record_size;
  queued_bytes_ += record_size;
  queued_samples_ += samples;
  return true;
}

QueueBatch DiskQueue::peek(std::size_t max_samples) {
  QueueBatch batch;
  std::lock_guard lock(mu_);
  int fd = -1;
  uint64_t fd_segment = 0;
  std::size_t damaged = 0;
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const Record& r = records_[i];
    if (!batch.empty() && batch.samples + r.samples > max_samples) break;
    if (fd < 0 || fd_segment != r.segment) {
      if (fd >= 0) ::close(fd);
      fd = ::open(segment_path(r.segment).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
      fd_segment = r.segment;
    }
    std::string data(r.size, '\0');
    bool good =
        fd >= 0 && pread_all(fd, data.data(), data.size(), r.offset) &&
        get_u32(data.data()) == kMagic &&
        record_crc(r.size - kHeaderBytes, r.samples, std::string_view(data).substr(kHeaderBytes)) ==
            get_u32(data.data() + 12);
    if (!good) {
      // Damaged since it was written (someone else touched the file): skipping it is the only
      // way forward, and only the front can be dropped, so stop the batch here.
      if (batch.empty()) damaged = 1;
      break;
    }
    batch.payloads.push_back(data.substr(kHeaderBytes));
    batch.samples += r.samples;
    batch.end_seq = r.seq + 1;
  }
  if (fd >= 0) ::close(fd);
  if (damaged > 0) {
    ++corrupt_records_;
    corrupt_samples_ += records_.front().samples;
    drop_front_locked(1, /*overflow=*/false);
  }
  return batch;
}

void DiskQueue::ack(uint64_t end_seq) {
  std::lock_guard lock(mu_);
  std::size_t count = 0;
  while (count < records_.size() && records_[count].seq < end_seq) ++count;
  if (count == 0) return;
  drop_front_locked(count, /*overflow=*/false);
}

void DiskQueue::drop_front_locked(std::size_t count, bool overflow) {
  for (std::size_t i = 0; i < count && !records_.empty(); ++i) {
    const Record& r = records_.front();
    queued_bytes_ -= r.size;
    queued_samples_ -= r.samples;
    if (overflow) dropped_queue_full_ += r.samples;
    records_.pop_front();
  }
  persist_cursor_locked();
  delete_consumed_segments_locked();
}

void DiskQueue::persist_cursor_locked() {
  uint64_t segment = write_segment_, offset = write_offset_;
  if (!records_.empty()) {
    segment = records_.front().segment;
    offset = records_.front().offset;
  }
  std::string text = std::to_string(segment) + " " + std::to_string(offset) + "\n";
  auto path = options_.dir / kCursorName;
  auto tmp = options_.dir / (std::string(kCursorName) + ".tmp");
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return;  // the old cursor stays: those records are sent again, not lost
  bool ok = write_all(fd, text.data(), text.size());
  if (ok && options_.fsync_each_append) ok = ::fsync(fd) == 0;
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) == 0) {
    if (options_.fsync_each_append) fsync_dir(options_.dir);
  } else {
    ::unlink(tmp.c_str());
  }
}

void DiskQueue::delete_consumed_segments_locked() {
  uint64_t first_live = records_.empty() ? write_segment_ : records_.front().segment;
  std::error_code ec;
  while (!segments_.empty() && segments_.front() < first_live) {
    std::filesystem::remove(segment_path(segments_.front()), ec);
    segments_.erase(segments_.begin());
  }
}

void DiskQueue::sync() {
  std::lock_guard lock(mu_);
  if (write_fd_ >= 0) ::fsync(write_fd_);
}

DiskQueueStats DiskQueue::stats() const {
  std::lock_guard lock(mu_);
  DiskQueueStats s;
  s.records = records_.size();
  s.samples = queued_samples_;
  s.bytes = queued_bytes_;
  s.dropped_samples_queue_full = dropped_queue_full_;
  s.corrupt_records = corrupt_records_;
  s.corrupt_samples = corrupt_samples_;
  return s;
}

}  // namespace wattprobe
