#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "collectors/units/unit_counter.h"
#include "collectors/units/unit_spec.h"

namespace wattprobe {

class HttpClient;

struct UnitReaderOptions {
  /// A read that takes longer is a timeout: the tick never waits for it anyway, but a hung
  /// service must not leave every later reading stale.
  double timeout_s = 2;
  /// A counter page is tens of kB (vLLM's, with its histograms, about 60 kB); a bigger body is a
  /// wrong endpoint.
  std::size_t max_body_bytes = 4u << 20;
};

/// The reasons of wattprobe_agent_unit_scrape_errors_total, each exported from zero.
inline constexpr const char* kUnitErrorReasons[] = {"timeout",    "unreachable", "http_status",
                                                    "too_large",  "malformed",   "missing_counter",
                                                    "not_counter"};

/// What the reader last made of its unit.
struct UnitReading {
  /// At least one read succeeded: `total` means something.
  bool good = false;
  /// Units since the first good read, after per-series reset handling; a failed read keeps it.
  double total = 0;
  uint64_t resets = 0;
  /// The last good read: how many series it summed and their raw sum (for doctor).
  std::size_t series = 0;
  double raw = 0;
  /// Reads that ended (good or not): the tick sees whether a new one came.
  uint64_t reads = 0;
  /// The request() the last read answered (0: a read_once() of the caller's own).
  uint64_t request = 0;
  /// The last read failed: its reason (a kUnitErrorReasons entry) and why, else empty.
  std::string failing;
  std::string detail;
};

/// Reads one unit's counter (an http(s) URL through the project's client, or a file) on a thread
/// of its own. The tick asks for a read with request() and takes latest(): a slow or hanging
/// service delays only its own readings, never the tick.
class UnitReader {
 public:
  explicit UnitReader(UnitSpec spec, UnitReaderOptions options = {});
  ~UnitReader();
  UnitReader(const UnitReader&) = delete;
  UnitReader& operator=(const UnitReader&) = delete;

  void start();
  void stop();
  /// Asks for a read; returns at once with the request's number (1, 2, ...). Requests made while
  /// a read runs make one more read, which answers the newest of them.
  uint64_t request();
  UnitReading latest() const;
  /// Failed reads by reason, every kUnitErrorReasons entry present.
  std::map<std::string, uint64_t> errors() const;
  const UnitSpec& spec() const { return spec_; }

  /// One read on the calling thread (the reader's thread, or a test's), answering `request`.
  void read_once(uint64_t request = 0);

 private:
  void run();
  void fail(uint64_t request, const std::string& reason, const std::string& detail);

  const UnitSpec spec_;
  const UnitReaderOptions options_;
  std::unique_ptr<HttpClient> http_;  // used by the one thread that reads
  CounterTotal counter_;              // likewise

  mutable std::mutex mu_;
  std::condition_variable wake_;
  uint64_t requested_ = 0;
  uint64_t served_ = 0;
  bool stopping_ = false;
  UnitReading latest_;
  std::map<std::string, uint64_t> errors_;
  std::thread thread_;
};

}  // namespace wattprobe
