#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

/// Reads a small kernel or config text file whole. Files larger than `max_bytes` are malformed:
/// sysfs attributes are at most a page, and a bigger file means the root points somewhere wrong.
Result<std::string> read_text(const std::filesystem::path& path, std::size_t max_bytes = 65536);

/// Strict parsers for one value in a sysfs attribute: optional surrounding whitespace and one
/// trailing newline are accepted; anything else (sign, garbage, overflow, empty) is malformed and
/// the error names `path` and the text found.
Result<uint64_t> parse_u64(std::string_view text, const std::filesystem::path& path);
Result<int64_t> parse_i64(std::string_view text, const std::filesystem::path& path);
Result<double> parse_double(std::string_view text, const std::filesystem::path& path);

/// read_text + parse_u64.
Result<uint64_t> read_u64(const std::filesystem::path& path);

std::string_view trim(std::string_view text);

/// "a, b, c" from {"a","b","c"} and ", ": for lists in reasons and error details.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

/// Quotes text for an error message, cut to a readable length.
std::string quote_for_error(std::string_view text);

/// Text from outside (an API's answer) made safe for one log line: newlines, tabs and every other
/// control or non-ASCII byte written as \n, \t or \xNN, so a reply can neither forge log lines
/// nor send terminal escapes. Backslashes are doubled so the escaping reads unambiguously.
std::string escape_for_log(std::string_view text);

}  // namespace wattprobe
