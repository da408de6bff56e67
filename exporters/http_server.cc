#include "exporters/http_server.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/core/detect_ssl.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "agent/base/http_endpoint.h"
#include "agent/base/log.h"
#include "exporters/http_request_parser.h"
#include "exporters/listen_address.h"

namespace wattprobe {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; none for a broken escape or a NUL, which no endpoint should ever see.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int h = hex(s[i + 1]), l = hex(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      c = static_cast<char>(h * 16 + l);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out += c;
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else {
        if (pad) return std::nullopt;
        v[k] = value(c);
        if (v[k] < 0) return std::nullopt;
      }
    }
    const unsigned n =
        (unsigned(v[0]) << 18) | (unsigned(v[1]) << 12) | (unsigned(v[2]) << 6) | unsigned(v[3]);
    out += static_cast<char>(n >> 16);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

// The request as endpoints see it, from Beast's parsed head; none when its target is not a path.
template <class Fields>
std::optional<HttpRequest> to_http_request(const http::request_header<Fields>& head) {
  HttpRequest r;
  r.method = std::string(head.method_string());
  std::string_view target(head.target().data(), head.target().size());
  // The absolute form (RFC 9112 3.2.2), which a proxy sends: only its path matters here.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (target.size() >= scheme.size() && iequals(target.substr(0, scheme.size()), scheme)) {
      const std::size_t slash = target.find('/', scheme.size());
      target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    }
  }
  if (target.empty() || target.front() != '/') return std::nullopt;
  const std::size_t q = target.find('?');
  auto path = percent_decode(target.substr(0, q), false);
  if (!path) return std::nullopt;
  r.path = std::move(*path);
  if (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      const std::size_t amp = rest.find('&');
      const std::string_view item = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      auto k = percent_decode(item.substr(0, eq), true);
      auto v = percent_decode(eq == std::string_view::npos ? "" : item.substr(eq + 1), true);
      if (!k || !v) return std::nullopt;
      r.query.emplace_back(std::move(*k), std::move(*v));
    }
  }
  for (const auto& f : head) {
    std::string name(f.name_string());
    for (char& c : name) c = lower(c);
    r.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  return r;
}

/// The bcrypt checks and endpoints' handle(): slow work kept off the I/O thread. A full queue
/// refuses more rather than growing without bound.
class WorkerPool {
 public:
  WorkerPool(int threads, std::size_t max_queued) : max_queued_(max_queued) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~WorkerPool() { stop(); }

  bool submit(std::function<void()> job) {
    {
      std::lock_guard lock(mu_);
      if (stopping_ || jobs_.size() >= max_queued_) return false;
      jobs_.push_back(std::move(job));
    }
    cv_.notify_one();
    return true;
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_ && threads_.empty()) return;
      stopping_ = true;
      jobs_.clear();
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }

  const std::size_t max_queued_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

enum class Phase { handshake, reading, idle, handling, writing };

struct FileStamp {
  int64_t mtime_ns = 0;
  int64_t size = -1;
  ino_t inode = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp stamp_of(const std::string& path) {
  struct stat st {};
  if (path.empty() || stat(path.c_str(), &st) != 0) return {};
  return {st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec, st.st_size, st.st_ino};
}

using Digest = std::array<unsigned char, 32>;

// How long an evicted connection is held, unread and uncounted, before it is closed.
constexpr std::chrono::seconds kRetireDelay{1};

}  // namespace

/// What the server's table knows of a connection, whatever its transport.
struct ConnBase {
  explicit ConnBase(HttpServer::Impl& s) : server(s) {}
  virtual ~ConnBase() = default;
  virtual void close() = 0;
  /// Leaves the table at once but closes a moment later: a flood that reopens every connection
  /// the server closes then reopens slowly, and cannot churn a probe out of its place.
  virtual void retire() = 0;
  HttpServer::Impl& server;
  std::string address;
  Phase phase = Phase::handshake;
  Clock::time_point since = Clock::now();
  bool registered = false;
  bool closed = false;
  std::list<ConnBase*>::iterator slot;
};

struct HttpServer::Impl {
  Impl(std::vector<HttpEndpoint*> eps, WebConfig w, HttpServerLimits l)
      : web(std::move(w)), limits(l), workers(l.workers, 256) {
    for (HttpEndpoint* ep : eps) {
      for (const std::string& p : ep->paths()) {
        if (p.empty() || p.front() != '/')
          throw std::runtime_error("endpoint path \"" + p + "\" does not start with '/'");
        const bool fresh =
            p.back() == '/' ? prefixes.emplace(p, ep).second : exact.emplace(p, ep).second;
        if (!fresh) throw std::runtime_error("endpoint path \"" + p + "\" is served twice");
      }
    }
    if (!web.basic_auth_users.empty()) dummy_hash = make_dummy_hash(web);
    RAND_bytes(cache_salt.data(), static_cast<int>(cache_salt.size()));
  }

  HttpEndpoint* route(const std::string& path) const {
    if (auto it = exact.find(path); it != exact.end()) return it->second;
    // The longest prefix that holds the path: map order puts it last among those that match.
    HttpEndpoint* found = nullptr;
    std::size_t best = 0;
    for (const auto& [prefix, ep] : prefixes) {
      if (prefix.size() > best && path.compare(0, prefix.size(), prefix) == 0) {
        found = ep;
        best = prefix.size();
      }
    }
    return found;
  }

  // Connection table, touched on the I/O thread only.
  void admit(ConnBase* c) {
    while (conns.size() >= limits.max_connections) evict(nullptr);
    while (per_address[c->address] >= limits.max_connections_per_address) evict(&c->address);
    c->slot = conns.insert(conns.end(), c);
    c->registered = true;
    ++per_address[c->address];
  }

  void forget(ConnBase* c) {
    if (!c->registered) return;
    c->registered = false;
    conns.erase(c->slot);
    auto it = per_address.find(c->address);
    if (it != per_address.end() && --it->second == 0) per_address.erase(it);
  }

  // Closes the connection that least deserves its place: the one idle the longest, else the one
  // that has taken longest over its handshake or request, else the slowest reader of an answer.
  // Connections whose request an endpoint is handling go last.
  void evict(const std::string* address) {
    auto rank = [](Phase p) {
      switch (p) {
        case Phase::idle:
          return 0;
        case Phase::handshake:
        case Phase::reading:
          return 1;
        case Phase::writing:
          return 2;
        case Phase::handling:
          return 3;
      }
      return 3;
    };
    ConnBase* victim = nullptr;
    for (ConnBase* c : conns) {
      if (address && c->address != *address) continue;
      if (!victim || rank(c->phase) < rank(victim->phase) ||
          (rank(c->phase) == rank(victim->phase) && c->since < victim->since))
        victim = c;
    }
    if (!victim) return;
    ++evicted;
    victim->retire();
  }

  // Credentials.
  Digest digest_of(const std::string& user, const std::string& password) const {
    Digest d{};
    std::string data(reinterpret_cast<const char*>(cache_salt.data()), cache_salt.size());
    data += user;
    data += ':';
    data += password;
    unsigned len = 0;
    EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr);
    OPENSSL_cleanse(data.data(), data.size());
    return d;
  }

  bool cached(const std::string& user, const Digest& d) {
    auto it = good.find(user);
    if (it == good.end()) return false;
    if (Clock::now() - it->second.second > limits.credential_cache_ttl) {
      good.erase(it);
      return false;
    }
    return CRYPTO_memcmp(it->second.first.data(), d.data(), d.size()) == 0;
  }

  bool rate_limited(const std::string& address) {
    auto it = failures.find(address);
    if (it == failures.end()) return false;
    if (Clock::now() - it->second.first > std::chrono::minutes(1)) {
      failures.erase(it);
      return false;
    }
    return it->second.second >= limits.max_auth_failures_per_minute;
  }

  void failed(const std::string& address) {
    const auto now = Clock::now();
    if (failures.size() > 4096) {
      std::erase_if(failures, [&](const auto& kv) {
        return now - kv.second.first > std::chrono::minutes(1);
      });
    }
    auto& f = failures[address];
    if (f.second == 0 || now - f.first > std::chrono::minutes(1)) f = {now, 0};
    ++f.second;
  }

  // TLS: the context new connections take, and the files' stamps it was made from.
  std::array<FileStamp, 3> tls_stamps() const {
    return {stamp_of(web.tls->cert_file), stamp_of(web.tls->key_file),
            stamp_of(web.tls->client_ca_file)};
  }

  void load_tls() {
    auto stamps = tls_stamps();
    auto made = make_tls_context(*web.tls);
    if (!made) throw std::runtime_error("tls_server_config: " + made.error().message());
    tls_ctx = std::make_shared<asio::ssl::context>(made->release());
    loaded_stamps = tried_stamps = stamps;
  }

  void watch_tls() {
    reload_timer.expires_after(limits.tls_reload_interval);
    reload_timer.async_wait([this](beast::error_code ec) {
      if (ec) return;
      auto stamps = tls_stamps();
      if (stamps != loaded_stamps && stamps != tried_stamps) {
        tried_stamps = stamps;
        auto made = make_tls_context(*web.tls);
        if (made) {
          tls_ctx = std::make_shared<asio::ssl::context>(made->release());
          loaded_stamps = stamps;
          ++tls_reloads;
          log_line("tls_server_config: certificate reloaded from " + web.tls->cert_file);
        } else {
          // A pair caught half-written: the next change of either file is tried again.
          log_line("tls_server_config: keeping the previous certificate: " +
                   made.error().message());
        }
      }
      watch_tls();
    });
  }

  void accept(std::size_t i);

  const WebConfig web;
  const HttpServerLimits limits;
  std::map<std::string, HttpEndpoint*> exact;
  std::map<std::string, HttpEndpoint*> prefixes;
  std::string dummy_hash;
  std::array<unsigned char, 16> cache_salt{};
  std::map<std::string, std::pair<Digest, Clock::time_point>> good;
  std::map<std::string, std::pair<Clock::time_point, int>> failures;
  std::size_t pending_checks = 0;
  std::size_t retiring = 0;  // evicted connections not closed yet
  bool stopping = false;

  std::list<ConnBase*> conns;
  std::map<std::string, std::size_t> per_address;
  std::atomic<uint64_t> accepted{0}, evicted{0}, timed_out{0}, tls_reloads{0}, password_checks{0};
  std::array<FileStamp, 3> loaded_stamps{}, tried_stamps{};

  // Declared after what connections touch when they end, so the I/O context (whose destruction
  // ends the last connections) goes first.
  WorkerPool workers;
  asio::io_context ioc{1};
  std::shared_ptr<asio::ssl::context> tls_ctx;
  asio::steady_timer reload_timer{ioc};
  std::vector<tcp::acceptor> acceptors;
  std::vector<int> ports;
  std::thread io_thread;
};

namespace {

template <bool kTls>
class Conn : public ConnBase, public std::enable_shared_from_this<Conn<kTls>> {
 public:
  using Stream = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

  Conn(HttpServer::Impl& s, tcp::socket socket, std::shared_ptr<asio::ssl::context> ctx)
      : ConnBase(s), ctx_(std::move(ctx)), stream_(make_stream(std::move(socket))) {
    beast::error_code ec;
    auto ep = lowest().socket().remote_endpoint(ec);
    address = ec ? std::string("?") : ep.address().to_string();
  }
  ~Conn() override { server.forget(this); }

  void start() {
    since = Clock::now();
    // One deadline from accept to the end of the first request's head: the TLS handshake is in it.
    lowest().expires_after(server.limits.header_timeout);
    if constexpr (kTls) {
      phase = Phase::handshake;
      beast::async_detect_ssl(stream_.next_layer(), buffer_,
                              [self = this->shared_from_this()](beast::error_code ec, bool tls) {
                                self->on_detect(ec, tls);
                              });
    } else {
      read_head();
    }
  }

  void close() override {
    if (closed) return;
    closed = true;
    server.forget(this);
    shut();
  }

  void retire() override {
    if (closed) return;
    // Bounded, so that a client opening connections without waiting cannot pile them up here.
    if (server.retiring >= server.limits.max_connections * 4) return close();
    closed = true;
    server.forget(this);
    ++server.retiring;
    beast::error_code ec;
    lowest().socket().cancel(ec);
    auto timer = std::make_shared<asio::steady_timer>(server.ioc, kRetireDelay);
    timer->async_wait([self = this->shared_from_this(), timer](beast::error_code) {
      --self->server.retiring;
      self->shut();
    });
  }

 private:
  Stream make_stream(tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *ctx_);
    } else {
      return Stream(std::move(socket));
    }
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }

  void shut() {
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }

  bool gone(beast::error_code ec) {
    if (closed) return true;
    if (!ec) return false;
    if (ec == beast::error::timeout) ++server.timed_out;
    close();
    return true;
  }

  void on_detect(beast::error_code ec, bool tls) {
    if (gone(ec)) return;
    // Plain HTTP sent to the TLS port: closed at once, never left to wait for a handshake.
    if (!tls) return close();
    if constexpr (kTls) {
      stream_.async_handshake(
          asio::ssl::stream_base::server, buffer_.data(),
          [self = this->shared_from_this()](beast::error_code ec2, std::size_t used) {
            self->on_handshake(ec2, used);
          });
    }
  }

  void on_handshake(beast::error_code ec, std::size_t used) {
    if (gone(ec)) return;
    buffer_.consume(used);
    if constexpr (kTls) {
      if (!allowed_san()) return close();
    }
    read_head();
  }

  bool allowed_san() {
    const auto& sans = server.web.tls->client_allowed_sans;
    if (sans.empty()) return true;
    if constexpr (kTls) {
      X509* cert = SSL_get0_peer_certificate(stream_.native_handle());
      if (!cert) return false;
      for (const std::string& san : sans) {
        if (X509_check_host(cert, san.data(), san.size(), 0, nullptr) == 1 ||
            X509_check_email(cert, san.data(), san.size(), 0) == 1 ||
            X509_check_ip_asc(cert, san.c_str(), 0) == 1)
          return true;
        auto* names = static_cast<GENERAL_NAMES*>(
            X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
        bool uri = false;
        for (int i = 0; names && i < sk_GENERAL_NAME_num(names); ++i) {
          const GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
          if (n->type != GEN_URI) continue;
          const auto* s = n->d.uniformResourceIdentifier;
          uri = uri || std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                        ASN1_STRING_length(s)) == san;
        }
        GENERAL_NAMES_free(names);
        if (uri) return true;
      }
    }
    return false;
  }

  void read_head() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(server.limits.max_header_bytes));
    parser_->body_limit(server.limits.max_body_bytes);
    if (kept_alive_ && buffer_.size() == 0) {
      // Waiting for the next request: the idle timeout, until its first byte comes.
      phase = Phase::idle;
      since = Clock::now();
      lowest().expires_after(server.limits.idle_timeout);
      stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this()](
                                                         beast::error_code ec, std::size_t n) {
        if (self->gone(ec)) return;
        self->buffer_.commit(n);
        self->phase = Phase::reading;
        self->since = Clock::now();
        self->lowest().expires_after(self->server.limits.header_timeout);
        self->read_head_now();
      });
      return;
    }
    if (kept_alive_) {
      // A pipelined request already in the buffer.
      phase = Phase::reading;
      since = Clock::now();
      lowest().expires_after(server.limits.header_timeout);
    } else {
      phase = Phase::reading;
    }
    read_head_now();
  }

  void read_head_now() {
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_head(ec);
                            });
  }

  void on_head(beast::error_code ec) {
    if (closed) return;
    if (ec == http::error::header_limit || ec == beast::http::error::buffer_overflow)
      return fail(431, "request header too large\n");
    if (ec == http::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
        ec == asio::error::operation_aborted || ec == asio::ssl::error::stream_truncated ||
        ec == asio::error::connection_reset) {
      gone(ec);
      return;
    }
    if (ec == http::error::body_limit) return fail(413, "request body too large\n");
    if (ec) return fail(400, "malformed request\n");
    auto& req = parser_->get();
    const auto expect = req[http::field::expect];
    if (!expect.empty()) {
      if (!iequals(std::string_view(expect.data(), expect.size()), "100-continue"))
        return fail(417, "only Expect: 100-continue is understood\n");
      if (parser_->content_length() && *parser_->content_length() > server.limits.max_body_bytes)
        return fail(413, "request body too large\n");
    }
    if (parser_->is_done()) return dispatch();
    if (parser_->content_length() && *parser_->content_length() > server.limits.max_body_bytes)
      return fail(413, "request body too large\n");
    phase = Phase::reading;
    lowest().expires_after(server.limits.io_timeout);
    auto read_body = [self = this->shared_from_this()] {
      http::async_read(self->stream_, self->buffer_, *self->parser_,
                       [self](beast::error_code ec2, std::size_t) {
                         if (self->closed) return;
                         if (ec2 == http::error::body_limit)
                           return self->fail(413, "request body too large\n");
                         if (self->gone(ec2)) return;
                         self->dispatch();
                       });
    };
    if (!expect.empty()) {
      // The client waits for this before it sends the body.
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      http::async_write(
          stream_, *cont,
          [self = this->shared_from_this(), cont, read_body](beast::error_code ec2, std::size_t) {
            if (self->gone(ec2)) return;
            read_body();
          });
      return;
    }
    read_body();
  }

  void dispatch() {
    auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    head_ = req.method() == http::verb::head;
    auto request = to_http_request(req.base());
    if (!request) return fail(400, "the request target is not a path\n");
    request->remote_address = address;
    HttpEndpoint* ep = server.route(request->path);
    if (!ep) return answer(error_response(404, "not found\n"));
    if (req.method() != http::verb::get && !head_) {
      HttpResponse r = error_response(405, "only GET and HEAD\n");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return answer(std::move(r));
    }
    if (ep->needs_auth() && !server.web.basic_auth_users.empty())
      return authenticate(ep, std::move(*request));
    handle(ep, std::move(*request));
  }

  void authenticate(HttpEndpoint* ep, HttpRequest request) {
    auto unauthorized = [] {
      HttpResponse r = error_response(401, "unauthorized\n");
      r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"wattprobe\", charset=\"UTF-8\"");
      return r;
    };
    auto header = request.header("authorization");
    std::optional<std::string> decoded;
    if (header && header->size() > 6 && iequals(header->substr(0, 6), "Basic ")) {
      std::string_view b64 = std::string_view(*header).substr(6);
      while (!b64.empty() && b64.front() == ' ') b64.remove_prefix(1);
      decoded = base64_decode(b64);
    }
    const std::size_t colon = decoded ? decoded->find(':') : std::string::npos;
    if (colon == std::string::npos) return answer(unauthorized());
    std::string user = decoded->substr(0, colon), password = decoded->substr(colon + 1);
    OPENSSL_cleanse(decoded->data(), decoded->size());
    const Digest digest = server.digest_of(user, password);
    if (server.cached(user, digest)) return handle(ep, std::move(request));
    if (server.rate_limited(address)) {
      HttpResponse r = error_response(429, "too many failed logins, retry later\n");
      r.headers.emplace_back("Retry-After", "60");
      return answer(std::move(r));
    }
    phase = Phase::handling;
    since = Clock::now();
    ++server.pending_checks;
    auto self = this->shared_from_this();
    const bool queued = server.workers.submit([self, ep, request = std::move(request),
                                               user = std::move(user),
                                               password = std::move(password), digest]() mutable {
      ++self->server.password_checks;
      const bool ok = check_basic_auth(self->server.web, user, password, self->server.dummy_hash);
      OPENSSL_cleanse(password.data(), password.size());
      auto& ioc = self->server.ioc;
      asio::post(ioc, [self = std::move(self), ep, request = std::move(request),
                       user = std::move(user), digest, ok]() mutable {
        --self->server.pending_checks;
        if (ok) {
          self->server.good[user] = {digest, Clock::now()};
        } else {
          self->server.failed(self->address);
        }
        if (self->closed) return;
        if (!ok) {
          HttpResponse r = error_response(401, "unauthorized\n");
          r.headers.emplace_back("WWW-Authenticate",
                                 "Basic realm=\"wattprobe\", charset=\"UTF-8\"");
          return self->answer(std::move(r));
        }
        self->handle(ep, std::move(request));
      });
    });
    if (!queued) {
      --server.pending_checks;
      HttpResponse r = error_response(503, "busy, retry later\n");
      r.headers.emplace_back("Retry-After", "1");
      answer(std::move(r));
    }
  }

  void handle(HttpEndpoint* ep, HttpRequest request) {
    phase = Phase::handling;
    since = Clock::now();
    auto self = this->shared_from_this();
    const bool queued = server.workers.submit([self, ep, request = std::move(request)]() mutable {
      HttpResponse r;
      try {
        r = ep->handle(request);
      } catch (const std::exception& e) {
        r = error_response(500, std::string("internal error: ") + e.what() + "\n");
      }
      auto& ioc = self->server.ioc;
      asio::post(ioc, [self = std::move(self), r = std::move(r)]() mutable {
        if (self->closed) return;
        self->answer(std::move(r));
      });
    });
    if (!queued) {
      HttpResponse r = error_response(503, "busy, retry later\n");
      r.headers.emplace_back("Retry-After", "1");
      answer(std::move(r));
    }
  }

  static HttpResponse error_response(int status, std::string text) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(text);
    return r;
  }

  // An error the connection cannot go on after: answered, then closed.
  void fail(int status, std::string text) {
    keep_alive_ = false;
    head_ = false;
    answer(error_response(status, std::move(text)));
  }

  void answer(HttpResponse r) {
    res_ = {};
    res_.version(parser_ && parser_->get().version() == 10 ? 10 : 11);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::content_type, r.content_type);
    for (const auto& [k, v] : r.headers) res_.insert(k, v);
    for (const auto& [k, v] : server.web.http.headers) res_.insert(k, v);
    res_.set(http::field::content_length, std::to_string(r.body.size()));
    if (!head_) res_.body() = std::move(r.body);
    res_.keep_alive(keep_alive_);
    phase = Phase::writing;
    since = Clock::now();
    lowest().expires_after(server.limits.io_timeout);
    http::async_write(stream_, res_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        if (self->gone(ec)) return;
                        self->res_ = {};
                        if (!self->keep_alive_) return self->finish();
                        self->kept_alive_ = true;
                        self->read_head();
                      });
  }

  void finish() {
    if constexpr (kTls) {
      // close_notify, briefly: a client that never answers it does not hold the connection.
      lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->close(); });
    } else {
      close();
    }
  }

  std::shared_ptr<asio::ssl::context> ctx_;  // before stream_, which holds a reference to it
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  bool keep_alive_ = false;
  bool kept_alive_ = false;
  bool head_ = false;
};

}  // namespace

void HttpServer::Impl::accept(std::size_t i) {
  acceptors[i].async_accept([this, i](beast::error_code ec, tcp::socket socket) {
    // A connection accepted just before the server began to stop is not started.
    if (ec == asio::error::operation_aborted || stopping) return;
    if (ec) {
      // Out of descriptors, most likely: wait a little rather than spin on the error.
      auto timer = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(100));
      timer->async_wait([this, i, timer](beast::error_code) { accept(i); });
      return;
    }
    ++accepted;
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    if (web.tls) {
      auto conn = std::make_shared<Conn<true>>(*this, std::move(socket), tls_ctx);
      admit(conn.get());
      conn->start();
    } else {
      auto conn = std::make_shared<Conn<false>>(*this, std::move(socket), nullptr);
      admit(conn.get());
      conn->start();
    }
    accept(i);
  });
}

HttpServer::HttpServer(const std::vector<std::string>& listen, std::vector<HttpEndpoint*> endpoints,
                       WebConfig web, HttpServerLimits limits)
    : impl_(std::make_unique<Impl>(std::move(endpoints), std::move(web), limits)) {
  if (impl_->web.tls) impl_->load_tls();
  for (const std::string& l : listen) {
    auto split = split_listen_address(l);
    if (!split) throw std::runtime_error("cannot listen on " + l + ": " + split.error().detail);
    const std::string& host = split->first;
    try {
      tcp::endpoint ep(asio::ip::make_address(host), static_cast<unsigned short>(split->second));
      tcp::acceptor a(impl_->ioc);
      a.open(ep.protocol());
      a.set_option(asio::socket_base::reuse_address(true));
      if (ep.address().is_v6()) a.set_option(asio::ip::v6_only(true));
      a.bind(ep);
      a.listen(asio::socket_base::max_listen_connections);
      impl_->ports.push_back(a.local_endpoint().port());
      impl_->acceptors.push_back(std::move(a));
    } catch (const std::exception& e) {
      throw std::runtime_error("cannot listen on " + l + ": " + e.what());
    }
  }
  for (std::size_t i = 0; i < impl_->acceptors.size(); ++i) impl_->accept(i);
  if (impl_->web.tls) impl_->watch_tls();
  impl_->io_thread = std::thread([this] { impl_->ioc.run(); });
}

HttpServer::~HttpServer() {
  std::promise<void> closed;
  asio::post(impl_->ioc, [this, &closed] {
    impl_->stopping = true;
    beast::error_code ec;
    for (auto& a : impl_->acceptors) a.close(ec);
    impl_->reload_timer.cancel();
    while (!impl_->conns.empty()) impl_->conns.front()->close();
    closed.set_value();
  });
  closed.get_future().wait();
  impl_->workers.stop();
  impl_->ioc.stop();
  impl_->io_thread.join();
}

std::vector<int> HttpServer::ports() const { return impl_->ports; }

bool HttpServer::tls() const { return impl_->web.tls.has_value(); }

HttpServer::Stats HttpServer::stats() const {
  return {impl_->accepted.load(), impl_->evicted.load(), impl_->timed_out.load(),
          impl_->tls_reloads.load(), impl_->password_checks.load()};
}

std::optional<HttpRequest> parse_http_request(std::string_view bytes,
                                              std::size_t max_header_bytes) {
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(max_header_bytes));
  parser.body_limit(64 * 1024);
  parser.eager(true);
  beast::error_code ec;
  std::size_t used = 0;
  while (!ec && used < bytes.size() && !parser.is_done()) {
    const std::size_t n = parser.put(asio::buffer(bytes.data() + used, bytes.size() - used), ec);
    if (n == 0 && !ec) break;
    used += n;
  }
  if (ec || !parser.is_header_done()) return std::nullopt;
  return to_http_request(parser.get().base());
}

}  // namespace wattprobe
