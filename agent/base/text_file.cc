#include "agent/base/text_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace wattprobe {

Result<std::string> read_text(const std::filesystem::path& path, std::size_t max_bytes) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return error_from_errno(errno, path.string(), "open");
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return error_from_errno(err, path.string(), "read");
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return Error{ErrorKind::malformed, path.string(),
                   "larger than " + std::to_string(max_bytes) + " bytes"};
    }
  }
  ::close(fd);
  return out;
}

std::string_view trim(std::string_view text) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

std::string quote_for_error(std::string_view text) {
  constexpr std::size_t kMax = 40;
  std::string out = "\"";
  for (char c : text.substr(0, kMax)) {
    if (c == '\n') {
      out += "\\n";
    } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      out += '?';
    } else {
      out += c;
    }
  }
  if (text.size() > kMax) out += "...";
  return out + "\"";
}

std::string escape_for_log(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  return out;
}

namespace {

template <class T>
Result<T> parse_integer(std::string_view text, const std::filesystem::path& path,
                        std::string_view expected) {
  std::string_view t = trim(text);
  if (t.empty())
    return Error{ErrorKind::malformed, path.string(), "empty, expected " + std::string(expected)};
  if constexpr (std::is_unsigned_v<T>) {
    if (t.front() == '-' || t.front() == '+') {
      return Error{ErrorKind::malformed, path.string(),
                   quote_for_error(t) + " is not " + std::string(expected)};
    }
  }
  T value{};
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return Error{ErrorKind::malformed, path.string(), quote_for_error(t) + " is out of range"};
  }
  if (ec != std::errc() || end != t.data() + t.size()) {
    return Error{ErrorKind::malformed, path.string(),
                 quote_for_error(t) + " is not " + std::string(expected)};
  }
  return value;
}

}  // namespace

Result<uint64_t> parse_u64(std::string_view text, const std::filesystem::path& path) {
  return parse_integer<uint64_t>(text, path, "an unsigned integer");
}

Result<int64_t> parse_i64(std::string_view text, const std::filesystem::path& path) {
  return parse_integer<int64_t>(text, path, "an integer");
}

Result<double> parse_double(std::string_view text, const std::filesystem::path& path) {
  std::string t(trim(text));
  if (t.empty()) return Error{ErrorKind::malformed, path.string(), "empty, expected a number"};
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || errno == ERANGE || !std::isfinite(v)) {
    return Error{ErrorKind::malformed, path.string(),
                 quote_for_error(t) + " is not a finite number"};
  }
  return v;
}

Result<uint64_t> read_u64(const std::filesystem::path& path) {
  auto text = read_text(path);
  if (!text) return text.error();
  return parse_u64(*text, path);
}

}  // namespace wattprobe
