#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wattprobe {
// base/http_client.h has its own HttpRequest and HttpResponse in wattprobe. The inline namespace
// gives these other linker names, so a program holding both (the agent) has no two classes of
// one name, and their inline members never stand in for each other; a file still includes one.
inline namespace endpoint {

/// One HTTP request as an endpoint sees it: the transport (plain or TLS, keep-alive, limits,
/// authentication) is the server's, and already done. Header names are lower case; the query
/// is split and percent-decoded, in its order.
struct HttpRequest {
  std::string method;  // "GET", "HEAD", ...
  std::string path;    // decoded, without the query: "/emissions/bylocation"
  std::vector<std::pair<std::string, std::string>> query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string remote_address;  // "127.0.0.1" or "::1", without the port

  /// The first value of a query parameter, or none.
  std::optional<std::string> query_param(std::string_view name) const {
    for (const auto& [k, v] : query)
      if (k == name) return v;
    return std::nullopt;
  }
  /// The first value of a header (name in lower case), or none.
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return std::nullopt;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  /// Extra headers (Content-Encoding, Retry-After, ...); Content-Type and Content-Length are
  /// the server's.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// What the agent's HTTP server serves at some paths: /metrics, /healthz, the carbon-aware API.
/// An endpoint knows nothing of the transport. handle() is called from the server's threads,
/// concurrently: it must be thread-safe and must never wait for a tick.
class HttpEndpoint {
 public:
  virtual ~HttpEndpoint() = default;
  /// The paths served: an exact path ("/metrics"), or a prefix ending in '/' ("/emissions/")
  /// that takes every path below it.
  virtual std::vector<std::string> paths() const = 0;
  /// Whether the web config's authentication (basic auth) guards it. Probes carry no password.
  virtual bool needs_auth() const { return true; }
  virtual HttpResponse handle(const HttpRequest& request) = 0;
};

}  // namespace endpoint
}  // namespace wattprobe
