#include "agent/base/http_client.h"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "agent/base/curl_library.h"
#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

struct Transfer {
  std::string body;
  std::size_t cap = 0;
  bool over_cap = false;
  int retry_after_s = -1;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->body.size() + n > t->cap) {
    t->over_cap = true;
    return 0;  // makes curl abort with CURLE_WRITE_ERROR
  }
  t->body.append(data, n);
  return n;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (auto seconds = parse_retry_after_header(std::string_view(data, n)))
    t->retry_after_s = static_cast<int>(*seconds);
  return n;
}

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return buf;
}

}  // namespace

std::optional<int64_t> parse_retry_after_header(std::string_view line) {
  constexpr std::string_view kName = "retry-after:";
  if (line.size() <= kName.size()) return std::nullopt;
  for (size_t i = 0; i < kName.size(); ++i) {
    char c = line[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != kName[i]) return std::nullopt;
  }
  std::string_view v = trim(line.substr(kName.size()));
  int64_t seconds = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), seconds);
  if (ec == std::errc::result_out_of_range && !v.empty() && v.front() != '-' &&
      std::all_of(v.begin(), v.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    return kMaxRetryAfterSeconds;  // digits past int64: "later than we will wait"
  if (ec != std::errc() || end != v.data() + v.size() || seconds < 0) return std::nullopt;
  return std::min(seconds, kMaxRetryAfterSeconds);
}

std::string redact_url(const std::string& url) {
  std::string out = url;
  if (auto q = out.find_first_of("?#"); q != std::string::npos) out.resize(q);
  auto scheme = out.find("://");
  size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  auto slash = out.find('/', host_start);
  auto at = out.rfind('@', slash == std::string::npos ? out.size() : slash);
  if (at != std::string::npos && at >= host_start) out.erase(host_start, at + 1 - host_start);
  return out;
}

HttpClient::HttpClient(HttpOptions options) : options_(std::move(options)) {
  if (const auto& api = curl_api()) curl_ = api->easy_init();
}

HttpClient::~HttpClient() {
  if (curl_) curl_api()->easy_cleanup(static_cast<CURL*>(curl_));
}

HttpGetResult HttpClient::get(const HttpGetRequest& request) {
  HttpGetResult out;
  auto* curl = static_cast<CURL*>(curl_);
  const auto& lib = curl_api();
  if (!curl) {
    out.reason = "transport";
    out.detail = lib ? "libcurl could not be initialised" : lib.error().message();
    return out;
  }
  const CurlApi& api = *lib;
  api.easy_reset(curl);
  Transfer t;
  t.cap = options_.max_body_bytes;
  char errbuf[CURL_ERROR_SIZE] = {};
  api.easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  api.easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  api.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  api.easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  // Threads: no SIGALRM-based DNS timeouts.
  api.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  api.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                  static_cast<long>(options_.connect_timeout_s * 1000));
  api.easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.total_timeout_s * 1000));
  api.easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  api.easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) api.easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  api.easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE,
                  static_cast<curl_off_t>(options_.max_body_bytes));
  api.easy_setopt(curl, CURLOPT_USERAGENT, "wattprobe/0.1");
  api.easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  api.easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  api.easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  api.easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  api.easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_slist* headers = nullptr;
  for (const auto& h : request.secret_headers) headers = api.slist_append(headers, h.c_str());
  if (headers) api.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  if (!request.basic_user.empty()) {
    api.easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    api.easy_setopt(curl, CURLOPT_USERNAME, request.basic_user.c_str());
    api.easy_setopt(curl, CURLOPT_PASSWORD, request.basic_password.c_str());
  }

  CURLcode rc = api.easy_perform(curl);
  if (headers) api.slist_free_all(headers);
  // Drop the credentials from the handle now rather than at the next reset.
  api.easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  api.easy_setopt(curl, CURLOPT_USERNAME, nullptr);
  api.easy_setopt(curl, CURLOPT_PASSWORD, nullptr);

  if (rc != CURLE_OK) {
    std::string what = errbuf[0] ? std::string(errbuf) : api.easy_strerror(rc);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        out.reason = "timeout";
        out.detail =
            "no complete answer within " + seconds(options_.total_timeout_s) + " s (" + what + ")";
        break;
      case CURLE_COULDNT_CONNECT:
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        out.reason = "connect";
        out.detail = "cannot connect: " + what;
        break;
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
        out.reason = "tls";
        out.detail = "TLS refused: " + what;
        break;
      case CURLE_FILESIZE_EXCEEDED:
        out.reason = "too_large";
        out.detail =
            "answer larger than the " + std::to_string(options_.max_body_bytes) + "-byte cap";
        break;
      case CURLE_WRITE_ERROR:
        if (t.over_cap) {
          out.reason = "too_large";
          out.detail =
              "answer larger than the " + std::to_string(options_.max_body_bytes) + "-byte cap";
          break;
        }
        [[fallthrough]];
      default:
        out.reason = "transport";
        out.detail = what;
    }
    out.body.clear();
    return out;
  }
  api.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.status);
  out.body = std::move(t.body);
  out.retry_after_s = t.retry_after_s;
  return out;
}

}  // namespace wattprobe
