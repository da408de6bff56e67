#include "exporters/http_server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "agent/base/http_endpoint.h"
#include "exporters/http_request_parser.h"

namespace wattprobe {
namespace {

/// An endpoint that says what it was asked.
class Echo : public HttpEndpoint {
 public:
  Echo(std::vector<std::string> paths, bool auth) : paths_(std::move(paths)), auth_(auth) {}
  std::vector<std::string> paths() const override { return paths_; }
  bool needs_auth() const override { return auth_; }
  HttpResponse handle(const HttpRequest& r) override {
    HttpResponse out;
    out.body = r.method + " " + r.path;
    for (const auto& [k, v] : r.query) out.body += " " + k + "=" + v;
    out.body += "\n";
    return out;
  }

 private:
  std::vector<std::string> paths_;
  bool auth_;
};

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/// Everything the server sends on `fd` until it closes the connection (or 5 s pass).
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

/// Sends `bytes` on a new connection and returns all that comes back.
std::string roundtrip(int port, const std::string& bytes) {
  int fd = connect_to(port);
  EXPECT_GE(fd, 0);
  send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string out = read_all(fd);
  close(fd);
  return out;
}

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + extra + "\r\n";
}

std::string bcrypt_of(const char* password, int cost) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof salt);
  crypt_data data{};
  return crypt_r(password, salt, &data);
}

TEST(HttpServer, RoutesExactAndPrefixPathsAndAnswersHead404And405) {
  Echo exact({"/metrics"}, false), prefix({"/emissions/"}, false);
  HttpServer server({"127.0.0.1:0"}, {&exact, &prefix});
  const int port = server.ports().front();
  EXPECT_NE(roundtrip(port, get("/metrics")).find("\r\n\r\nGET /metrics\n"), std::string::npos);
  const std::string q = roundtrip(port, get("/emissions/bylocation?location=a%20b&x=1+2"));
  EXPECT_NE(q.find("GET /emissions/bylocation location=a b x=1 2\n"), std::string::npos) << q;
  EXPECT_EQ(roundtrip(port, get("/nope")).rfind("HTTP/1.1 404", 0), 0u);
  EXPECT_EQ(roundtrip(port, get("/metricsx")).rfind("HTTP/1.1 404", 0), 0u);
  const std::string post = roundtrip(
      port, "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.rfind("HTTP/1.1 405", 0), 0u) << post;
  EXPECT_NE(post.find("Allow: GET, HEAD"), std::string::npos) << post;
  const std::string head =
      roundtrip(port, "HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 14\r\n"), std::string::npos) << head;
  EXPECT_EQ(head.substr(head.find("\r\n\r\n") + 4), "");
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  Echo ep({"/a", "/b"}, false);
  HttpServer server({"127.0.0.1:0"}, {&ep});
  const std::string out =
      roundtrip(server.ports().front(), "GET /a HTTP/1.1\r\nHost: t\r\n\r\n" + get("/b"));
  const std::size_t a = out.find("GET /a\n"), b = out.find("GET /b\n");
  ASSERT_NE(a, std::string::npos) << out;
  ASSERT_NE(b, std::string::npos) << out;
  EXPECT_LT(a, b);
}

TEST(HttpServer, OversizedBodiesAndUnknownExpectationsAreRefused) {
  Echo ep({"/a"}, false);
  HttpServerLimits limits;
  limits.max_body_bytes = 100;
  HttpServer server({"127.0.0.1:0"}, {&ep}, {}, limits);
  const int port = server.ports().front();
  const std::string big =
      roundtrip(port, "GET /a HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
  EXPECT_EQ(big.rfind("HTTP/1.1 413", 0), 0u) << big;
  EXPECT_EQ(roundtrip(port, get("/a", "Expect: teapot\r\n")).rfind("HTTP/1.1 417", 0), 0u);
  // 100-continue is honoured: the interim answer, then the real one once the body came.
  int fd = connect_to(port);
  const std::string head =
      "GET /a HTTP/1.1\r\nHost: t\r\nConnection: close\r\nExpect: 100-continue\r\n"
      "Content-Length: 2\r\n\r\n";
  send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  char buf[256];
  const ssize_t n = recv(fd, buf, sizeof buf, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(n)).rfind("HTTP/1.1 100", 0), 0u);
  send(fd, "hi", 2, MSG_NOSIGNAL);
  EXPECT_EQ(read_all(fd).rfind("HTTP/1.1 200", 0), 0u);
  close(fd);
  EXPECT_EQ(roundtrip(port, std::string("GET /a HTTP/1.1\r\nHost: t\r\nX: ") +
                                std::string(20000, 'x') + "\r\n\r\n")
                .rfind("HTTP/1.1 431", 0),
            0u);
}

TEST(HttpServer, AnUnfinishedRequestHeadIsClosedAtItsDeadline) {
  Echo ep({"/a"}, false);
  HttpServerLimits limits;
  limits.header_timeout = std::chrono::milliseconds(300);
  HttpServer server({"127.0.0.1:0"}, {&ep}, {}, limits);
  int fd = connect_to(server.ports().front());
  send(fd, "GET /a HTTP/1.1\r\n", 17, MSG_NOSIGNAL);
  EXPECT_EQ(read_all(fd), "");  // closed by the server, well before the 5 s receive timeout
  close(fd);
  for (int i = 0; i < 100 && server.stats().timed_out == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(server.stats().timed_out, 1u);
}

TEST(HttpServer, AFullCapClosesTheSlowestConnectionNotTheNewOne) {
  Echo ep({"/a"}, false);
  HttpServerLimits limits;
  limits.max_connections_per_address = 4;
  HttpServer server({"127.0.0.1:0"}, {&ep}, {}, limits);
  const int port = server.ports().front();
  std::vector<int> silent;
  for (int i = 0; i < 4; ++i) silent.push_back(connect_to(port));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(roundtrip(port, get("/a")).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_GE(server.stats().evicted, 1u);
  // The oldest silent one made room: it is closed (a second after leaving the table).
  EXPECT_EQ(read_all(silent.front()), "");
  for (int fd : silent) close(fd);
}

TEST(HttpServer, BasicAuthIsCheckedOnceThenCachedAndFailuresAreRateLimited) {
  Echo guarded({"/metrics"}, true), open({"/healthz"}, false);
  WebConfig web;
  web.basic_auth_users["prometheus"] = bcrypt_of("secret", 4);
  HttpServerLimits limits;
  limits.max_auth_failures_per_minute = 3;
  HttpServer server({"127.0.0.1:0"}, {&guarded, &open}, web, limits);
  const int port = server.ports().front();
  const std::string good =
      "Authorization: Basic cHJvbWV0aGV1czpzZWNyZXQ=\r\n";                      // prometheus:secret
  const std::string bad = "Authorization: Basic cHJvbWV0aGV1czp3cm9uZw==\r\n";  // prometheus:wrong
  const std::string none = roundtrip(port, get("/metrics"));
  EXPECT_EQ(none.rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_NE(none.find("WWW-Authenticate: Basic"), std::string::npos);
  EXPECT_EQ(roundtrip(port, get("/healthz")).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(roundtrip(port, get("/metrics", good)).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(roundtrip(port, get("/metrics", good)).rfind("HTTP/1.1 200", 0), 0u);
  EXPECT_EQ(server.stats().password_checks, 1u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(roundtrip(port, get("/metrics", bad)).rfind("HTTP/1.1 401", 0), 0u);
  EXPECT_EQ(roundtrip(port, get("/metrics", bad)).rfind("HTTP/1.1 429", 0), 0u);
  EXPECT_EQ(server.stats().password_checks, 4u);  // the refused one cost no check
  // The good password still passes from the cache.
  EXPECT_EQ(roundtrip(port, get("/metrics", good)).rfind("HTTP/1.1 200", 0), 0u);
}

TEST(HttpServer, RefusesAnAddressItCannotBind) {
  Echo ep({"/a"}, false);
  EXPECT_THROW(HttpServer({"203.0.113.1:0"}, {&ep}), std::runtime_error);
  EXPECT_THROW(HttpServer({"127.0.0.1:0,127.0.0.1:1"}, {&ep}), std::runtime_error);
}

TEST(ParseHttpRequest, DecodesThePathAndQueryAndRefusesBrokenOnes) {
  auto r = parse_http_request(
      "GET /a%2Fb?q=%41+b&&k HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "/a/b");
  ASSERT_EQ(r->query.size(), 2u);
  EXPECT_EQ(r->query[0].second, "A b");
  EXPECT_EQ(r->query[1].first, "k");
  EXPECT_EQ(r->header("accept-encoding"), "gzip");
  EXPECT_TRUE(parse_http_request("GET http://h:1/x HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(parse_http_request("GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(parse_http_request("GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(parse_http_request("GET * HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(parse_http_request("GET /a HTTP/1.1\r\nHost: x\r\n"));
  EXPECT_FALSE(parse_http_request("NOT HTTP\r\n\r\n"));
}

}  // namespace
}  // namespace wattprobe
