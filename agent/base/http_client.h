#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wattprobe {

struct HttpOptions {
  double connect_timeout_s = 5;
  double total_timeout_s = 20;
  /// Grid answers are a few kB; a bigger body means a wrong endpoint or a hostile server.
  std::size_t max_body_bytes = 4u << 20;
  /// Extra CA bundle (PEM), for a private API gateway; empty = the system store. Verification of
  /// the peer and its host name is always on.
  std::string ca_file;
};

// The client's request and its outcome are named apart from the HTTP server's HttpRequest and
// HttpResponse (base/http_endpoint.h): the agent holds both.
struct HttpGetRequest {
  std::string url;
  /// "Name: value" lines. Marked secret so no error or log ever repeats them.
  std::vector<std::string> secret_headers;
  std::string basic_user;  // HTTP Basic auth when non-empty (WattTime /login)
  std::string basic_password;
};

/// The outcome of one GET. `reason` is empty on success (any status) and otherwise one of:
/// timeout, connect, tls, too_large, transport — the reason label of
/// wattprobe_agent_grid_fetch_errors_total. `detail` never contains a header or a credential.
struct HttpGetResult {
  long status = 0;
  std::string body;
  int retry_after_s = -1;  // parsed Retry-After (delta-seconds form), -1 when absent
  std::string reason;
  std::string detail;
  bool ok() const { return reason.empty(); }
};

/// The seconds a "Retry-After: N" header line asks for (any case, the delta-seconds form; the
/// HTTP-date form and anything malformed give nullopt, and the caller's own backoff applies).
/// Held to a year, so callers may convert to milliseconds without overflow; each caller caps
/// it again to its own bound (--grid-max-age, the push queue's retry_after_max).
std::optional<int64_t> parse_retry_after_header(std::string_view line);
inline constexpr int64_t kMaxRetryAfterSeconds = 365LL * 24 * 3600;

/// A blocking libcurl GET with connect and total timeouts, TLS verification on and a body cap.
/// One client per thread (it owns a curl easy handle and reuses its connections).
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpGetResult get(const HttpGetRequest& request);
  const HttpOptions& options() const { return options_; }

 private:
  HttpOptions options_;
  void* curl_ = nullptr;  // CURL*, kept opaque so callers need no curl header
};

/// The URL without user info or query, for error messages: what a user needs to find the
/// endpoint, nothing that could be a credential.
std::string redact_url(const std::string& url);

}  // namespace wattprobe
