#include "agent/base/secret_file.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <string>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

// A secret longer than this is not a token but the wrong file.
constexpr std::size_t kMaxSecretBytes = 16384;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

Result<std::string> secret_from_text(std::string_view text, const std::string& where) {
  std::string_view t = trim(text);
  if (t.empty()) return Error{ErrorKind::malformed, where, "empty, expected a secret"};
  for (std::size_t i = 0; i < t.size(); ++i) {
    const char* name = t[i] == '\r'   ? "a carriage return (CR)"
                       : t[i] == '\n' ? "a line feed (LF)"
                       : t[i] == '\0' ? "a NUL byte"
                                      : nullptr;
    if (name) {
      // The offset says where to look without saying what the secret is.
      return Error{ErrorKind::malformed, where,
                   std::string("the secret holds ") + name + " at byte " + std::to_string(i) +
                       "; a secret must be one line without CR, LF or NUL, which would split the "
                       "HTTP header it is sent in"};
    }
  }
  return std::string(t);
}

Result<std::string> read_secret_file(const std::string& path) {
  auto text = read_text(path, kMaxSecretBytes);
  if (!text) return text.error();
  return secret_from_text(*text, path);
}

Result<std::string> read_secret_file(const std::string& path, const HeldFile& held) {
  auto fresh = read_secret_file(path);
  if (fresh || fresh.error().kind != ErrorKind::permission || !held.is_open()) return fresh;
  auto text = held.read(kMaxSecretBytes);
  if (!text) return text.error();
  return secret_from_text(*text, path);
}

Result<bool> check_secret_file(const std::string& path) {
  auto text = read_text(path, kMaxSecretBytes);
  if (!text) return true;
  if (trim(*text).empty()) return true;  // reported by the reader, like a missing file
  auto secret = secret_from_text(*text, path);
  if (!secret) return secret.error();
  return true;
}

bool is_credential_header(std::string_view name) {
  const std::string n = lower(name);
  if (n == "authorization" || n == "proxy-authorization" || n == "cookie") return true;
  for (std::string_view word : {"token", "key", "secret", "password", "auth"})
    if (n.find(word) != std::string::npos) return true;
  return false;
}

bool url_has_credentials(std::string_view url) {
  auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return false;
  std::string_view rest = url.substr(scheme + 3);
  // The authority ends at the first '/', '?' or '#'; userinfo is what precedes its last '@'.
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  return authority.find('@') != std::string_view::npos;
}

std::string secret_query_parameter(std::string_view url) {
  auto q = url.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = url.substr(q + 1);
  query = query.substr(0, query.find('#'));
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    std::string_view name = pair.substr(0, pair.find('='));
    const std::string n = lower(name);
    if (n.empty()) continue;
    if (is_credential_header(n)) return std::string(name);
    for (std::string_view word : {"passwd", "pwd", "sig", "credential"})
      if (n.find(word) != std::string::npos) return std::string(name);
  }
  return "";
}

}  // namespace wattprobe
