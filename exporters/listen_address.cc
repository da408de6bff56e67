#include "exporters/listen_address.h"

#include <arpa/inet.h>

namespace wattprobe {

Result<std::pair<std::string, int>> split_listen_address(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return Error{ErrorKind::malformed, "listen", "\"" + listen + "\": " + why};
  };
  if (listen.find(',') != std::string::npos)
    return bad("one address per --listen; give --listen again for each further address");
  std::string host;
  std::string port;
  bool v6 = false;
  if (listen.starts_with("[")) {
    const std::size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':')
      return bad("expected [address]:port");
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
    v6 = true;
  } else {
    const std::size_t colon = listen.rfind(':');
    if (colon == std::string::npos || colon == 0) return bad("expected address:port");
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("an IPv6 address goes in brackets");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535)
    return bad("the port is not 0 to 65535");
  unsigned char buf[16];
  if (!v6 && host == "localhost") host = "127.0.0.1";
  if (inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), buf) != 1)
    return bad("\"" + host + "\" is not an IPv" + (v6 ? "6" : "4") + " address");
  return std::pair<std::string, int>{host, std::stoi(port)};
}

}  // namespace wattprobe
