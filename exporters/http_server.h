#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "exporters/web_config.h"

namespace wattprobe {

class HttpEndpoint;

/// The limits that keep the server answering whatever its clients do. A scrape or probe sends
/// its whole request at once and reads the answer at once, so every limit is generous for them.
struct HttpServerLimits {
  /// From accepting a connection (or a kept-alive one's first byte) to the end of the request
  /// header, the TLS handshake included.
  std::chrono::milliseconds header_timeout{5000};
  /// A kept-alive connection waiting for its next request.
  std::chrono::milliseconds idle_timeout{30000};
  /// Writing one answer, and reading one body.
  std::chrono::milliseconds io_timeout{30000};
  /// Open connections, in all and from one client address. When either is full, the connection
  /// idle the longest, or else the one slowest to send its request, is closed to make room: a new
  /// connection is never the one refused, so a probe gets through a flood from its own address.
  std::size_t max_connections = 64;
  std::size_t max_connections_per_address = 32;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_body_bytes = 64 * 1024;
  /// Threads that run bcrypt checks and endpoints' handle(), off the I/O thread.
  int workers = 2;
  /// How long a good user:password pair is taken without bcrypt.
  std::chrono::seconds credential_cache_ttl{600};
  /// Failed logins from one address beyond which it is answered 429 without a check, per minute.
  int max_auth_failures_per_minute = 10;
  /// How often the TLS files are looked at for a change.
  std::chrono::milliseconds tls_reload_interval{2000};
};

/// The agent's one HTTP server: plain HTTP and TLS (OpenSSL 3) on Boost.Beast, on one I/O
/// thread. It serves a list of HttpEndpoint and does the transport: the web config's TLS and
/// basic auth (for endpoints that need it), limits, HEAD, 404 and 405.
class HttpServer {
 public:
  /// Binds every address of `listen` ("address:port" or "[v6]:port", port 0 = a free port) and
  /// starts serving. `endpoints` must outlive the server. Throws std::runtime_error naming the
  /// address when one cannot be bound, or the file when TLS cannot be set up.
  HttpServer(const std::vector<std::string>& listen, std::vector<HttpEndpoint*> endpoints,
             WebConfig web = {}, HttpServerLimits limits = {});
  /// Stops accepting, closes every connection and joins the threads.
  ~HttpServer();

  /// The ports bound, in the order of `listen`.
  std::vector<int> ports() const;
  bool tls() const;

  /// Counters, for tests and the agent's log.
  struct Stats {
    uint64_t accepted = 0;
    uint64_t evicted = 0;    // closed to make room for a newer connection
    uint64_t timed_out = 0;  // closed by a deadline
    uint64_t tls_reloads = 0;
    uint64_t password_checks = 0;  // bcrypt checks run (a cached good password needs none)
  };
  Stats stats() const;

  struct Impl;  // public only so that the connections in http_server.cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wattprobe
