#pragma once

#include <string>

namespace wattprobe::testing {

/// What a client's gzip decoder gets from `body` (zlib in gzip mode, which checks the CRC and
/// the size), or "<error>" when it is not one whole gzip member.
std::string gunzip(const std::string& body);

}  // namespace wattprobe::testing
