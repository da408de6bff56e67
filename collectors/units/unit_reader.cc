#include "collectors/units/unit_reader.h"

#include <filesystem>
#include <system_error>

#include "agent/base/exposition_text.h"
#include "agent/base/http_client.h"
#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

bool is_http(const std::string& url) {
  return url.starts_with("http://") || url.starts_with("https://");
}

}  // namespace

UnitReader::UnitReader(UnitSpec spec, UnitReaderOptions options)
    : spec_(std::move(spec)), options_(options) {
  for (const char* r : kUnitErrorReasons) errors_[r] = 0;
  if (is_http(spec_.url)) {
    HttpOptions http;
    http.connect_timeout_s = options_.timeout_s;
    http.total_timeout_s = options_.timeout_s;
    http.max_body_bytes = options_.max_body_bytes;
    http_ = std::make_unique<HttpClient>(http);
  }
}

UnitReader::~UnitReader() { stop(); }

void UnitReader::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void UnitReader::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

uint64_t UnitReader::request() {
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = ++requested_;
  }
  wake_.notify_all();
  return id;
}

UnitReading UnitReader::latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

std::map<std::string, uint64_t> UnitReader::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

void UnitReader::run() {
  std::unique_lock lock(mu_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || requested_ != served_; });
    if (stopping_) return;
    // Requests that piled up while a read hung are one read: the newest counter is all the
    // tick wants.
    served_ = requested_;
    const uint64_t request = served_;
    lock.unlock();
    read_once(request);
    lock.lock();
  }
}

void UnitReader::fail(uint64_t request, const std::string& reason, const std::string& detail) {
  std::lock_guard lock(mu_);
  ++errors_[reason];
  ++latest_.reads;
  latest_.request = request;
  latest_.failing = reason;
  latest_.detail = detail;
}

void UnitReader::read_once(uint64_t request) {
  std::string body;
  if (http_) {
    HttpGetResult got = http_->get({spec_.url, {}, "", ""});
    if (!got.ok()) {
      const std::string reason = got.reason == "timeout"     ? "timeout"
                                 : got.reason == "too_large" ? "too_large"
                                                             : "unreachable";
      return fail(request, reason, redact_url(spec_.url) + ": " + got.reason + ": " + got.detail);
    }
    if (got.status != 200) {
      return fail(
          request, "http_status",
          redact_url(spec_.url) + ": HTTP status " + std::to_string(got.status) + ", expected 200");
    }
    body = std::move(got.body);
  } else {
    std::error_code ec;
    const auto size = std::filesystem::file_size(spec_.url, ec);
    if (ec) return fail(request, "unreachable", spec_.url + ": " + ec.message());
    if (size > options_.max_body_bytes) {
      return fail(request, "too_large",
                  spec_.url + ": " + std::to_string(size) + " bytes, more than " +
                      std::to_string(options_.max_body_bytes));
    }
    auto text = read_text(spec_.url, options_.max_body_bytes);
    if (!text.ok()) {
      // Grown past the cap between the size and the read, or unreadable.
      return fail(request, text.error().kind == ErrorKind::malformed ? "too_large" : "unreachable",
                  text.error().message());
    }
    body = std::move(*text);
  }
  auto parsed = parse_exposition_text(body, is_http(spec_.url) ? redact_url(spec_.url) : spec_.url);
  if (!parsed.ok()) return fail(request, "malformed", parsed.error().message());
  CounterSeries picked = select_counter(*parsed, spec_);
  if (!picked.reason.empty()) return fail(request, picked.reason, picked.detail);
  counter_.update(picked.series);
  std::lock_guard lock(mu_);
  latest_.good = true;
  latest_.total = counter_.total();
  latest_.resets = counter_.resets();
  latest_.series = picked.series.size();
  latest_.raw = 0;
  for (const auto& one : picked.series) latest_.raw += one.second;
  ++latest_.reads;
  latest_.request = request;
  latest_.failing.clear();
  latest_.detail.clear();
}

}  // namespace wattprobe
