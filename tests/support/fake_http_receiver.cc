#include "tests/support/fake_http_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <stdexcept>

namespace wattprobe::testing {
namespace {

int bind_local(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw std::runtime_error("bind failed");
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  *port = ntohs(addr.sin_port);
  return fd;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 204:
      return "No Content";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

int free_local_port() {
  int port = 0;
  int fd = bind_local(&port);
  ::close(fd);
  return port;
}

FakeHttpReceiver::FakeHttpReceiver(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = bind_local(&port_);
  if (::listen(listen_fd_, 16) != 0) throw std::runtime_error("listen failed");
  thread_ = std::thread([this] { serve(); });
}

FakeHttpReceiver::~FakeHttpReceiver() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
  for (int fd : hung_) ::close(fd);
}

std::string FakeHttpReceiver::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::vector<FakeHttpReceiver::Request> FakeHttpReceiver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

bool FakeHttpReceiver::read_request(int fd, Request* out) {
  std::string data;
  char buf[65536];
  std::size_t header_end = std::string::npos;
  std::size_t content_length = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) return false;
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    data.append(buf, static_cast<std::size_t>(n));
    if (header_end == std::string::npos) {
      header_end = data.find("\r\n\r\n");
      if (header_end == std::string::npos) continue;
      std::size_t line_end = data.find("\r\n");
      std::string first = data.substr(0, line_end);
      auto sp1 = first.find(' ');
      auto sp2 = first.find(' ', sp1 + 1);
      out->method = first.substr(0, sp1);
      out->target = first.substr(sp1 + 1, sp2 - sp1 - 1);
      std::size_t pos = line_end + 2;
      while (pos < header_end) {
        std::size_t eol = data.find("\r\n", pos);
        std::string line = data.substr(pos, eol - pos);
        auto colon = line.find(':');
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        out->headers[name] = value;
        pos = eol + 2;
      }
      if (auto it = out->headers.find("content-length"); it != out->headers.end())
        content_length = std::stoul(it->second);
    }
    if (data.size() >= header_end + 4 + content_length) {
      out->body = data.substr(header_end + 4, content_length);
      return true;
    }
  }
}

void FakeHttpReceiver::serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Request request;
    if (!read_request(fd, &request)) {
      ::close(fd);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
    }
    Reply reply = handler_(request);
    if (reply.hang) {
      hung_.push_back(fd);
      continue;
    }
    std::string out =
        "HTTP/1.1 " + std::to_string(reply.status) + " " + reason_phrase(reply.status) +
        "\r\nConnection: close\r\nContent-Length: " + std::to_string(reply.body.size()) + "\r\n";
    for (const auto& [name, value] : reply.headers) out += name + ": " + value + "\r\n";
    out += "\r\n" + reply.body;
    std::size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::write(fd, out.data() + done, out.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
}

}  // namespace wattprobe::testing
