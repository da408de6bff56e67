#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace wattprobe::testing {

/// A minimal HTTP/1.1 server on 127.0.0.1 (a free port) for testing push clients against
/// receivers that misbehave in exact ways: a status of the test's choosing, extra headers such
/// as Retry-After, or no answer at all. One connection at a time; every answer closes it.
class FakeHttpReceiver {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // names lower-cased
    std::string body;
  };
  struct Reply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    bool hang = false;  // read the request, never answer, keep the connection open
  };
  using Handler = std::function<Reply(const Request&)>;

  static Reply answer(int status, std::vector<std::pair<std::string, std::string>> headers = {},
                      std::string body = {}) {
    Reply r;
    r.status = status;
    r.headers = std::move(headers);
    r.body = std::move(body);
    return r;
  }
  static Reply hang() {
    Reply r;
    r.hang = true;
    return r;
  }

  explicit FakeHttpReceiver(Handler handler);
  ~FakeHttpReceiver();
  FakeHttpReceiver(const FakeHttpReceiver&) = delete;
  FakeHttpReceiver& operator=(const FakeHttpReceiver&) = delete;

  int port() const { return port_; }
  std::string url(std::string_view path = "/api/v1/write") const;
  std::vector<Request> requests() const;

 private:
  void serve();
  bool read_request(int fd, Request* out);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<Request> requests_;
  std::vector<int> hung_;
  std::thread thread_;
};

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
int free_local_port();

}  // namespace wattprobe::testing
