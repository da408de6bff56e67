#include "agent/base/option_table.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "agent/base/duration.h"

namespace wattprobe {

void refuse_value(const OptionValue& v, const std::string& why) {
  throw UsageError("invalid value \"" + v.value + "\" for --" + v.option + " (" + v.origin +
                   "): " + why);
}

uint64_t whole_value(const OptionValue& v, uint64_t lo, uint64_t hi) {
  const std::string& s = v.value;
  if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos) {
    refuse_value(v, "expected a whole number");
  }
  const uint64_t n = std::stoull(s);
  if (n < lo || n > hi) {
    refuse_value(v, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return n;
}

double number_value(const OptionValue& v, double lo, double hi) {
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(v.value, &used);
  } catch (const std::exception&) {
    refuse_value(v, "expected a number");
  }
  if (used != v.value.size() || !std::isfinite(d)) refuse_value(v, "expected a number");
  if (d < lo || d > hi) refuse_value(v, "expected " + number_text(lo) + " to " + number_text(hi));
  return d;
}

std::chrono::milliseconds duration_value(const OptionValue& v, std::chrono::milliseconds lo,
                                         std::chrono::milliseconds hi) {
  auto d = parse_duration(v.value);
  if (!d) refuse_value(v, "expected a duration such as 500ms, 1s, 5m");
  if (*d < lo || *d > hi) {
    refuse_value(v, "expected " + format_duration(lo) + " to " + format_duration(hi));
  }
  return *d;
}

std::filesystem::path folder_value(const OptionValue& v) {
  if (v.value.empty()) refuse_value(v, "expected a folder");
  std::error_code ec;
  if (!std::filesystem::is_directory(v.value, ec)) refuse_value(v, "no such folder");
  return v.value;
}

Result<std::string> expand_credentials_directory(const std::string& value) {
  for (std::string_view prefix : {"$CREDENTIALS_DIRECTORY/", "${CREDENTIALS_DIRECTORY}/"}) {
    if (!value.starts_with(prefix)) continue;
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') {
      return Error{ErrorKind::malformed, value,
                   "$CREDENTIALS_DIRECTORY is not set: systemd sets it only for a unit with "
                   "LoadCredential=; outside systemd, give the file's own path"};
    }
    return std::string(dir) + "/" + value.substr(prefix.size());
  }
  return value;
}

std::string secret_path_value(const OptionValue& v) {
  if (v.value.empty()) refuse_value(v, "expected a file");
  auto path = expand_credentials_directory(v.value);
  if (!path) refuse_value(v, path.error().detail);
  return *path;
}

bool is_regular_file_value(const OptionValue& v) {
  std::error_code ec;
  return !v.value.empty() && std::filesystem::is_regular_file(v.value, ec);
}

std::pair<std::string, std::string> name_value(const OptionValue& v, std::string_view form) {
  const auto eq = v.value.find('=');
  if (eq == std::string::npos || eq == 0) refuse_value(v, "expected " + std::string(form));
  return {v.value.substr(0, eq), v.value.substr(eq + 1)};
}

std::string number_text(double d) {
  std::ostringstream os;
  os << d;
  return os.str();
}

std::string word_list(const std::vector<std::string_view>& words) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i > 0) out += i + 1 == words.size() ? " or " : ", ";
    out += words[i];
  }
  return out;
}

namespace option_detail {
std::string duration_text(std::chrono::milliseconds d) { return format_duration(d); }
}  // namespace option_detail

}  // namespace wattprobe
