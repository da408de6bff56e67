#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "agent/base/http_endpoint.h"

namespace wattprobe {

/// The request as the HTTP server's parser reads it from raw bytes, for tests and the fuzz
/// target: the same parser, limits and target decoding. None when the bytes are not one whole,
/// valid request head, or its target is not a path.
std::optional<HttpRequest> parse_http_request(std::string_view bytes,
                                              std::size_t max_header_bytes = 16 * 1024);

}  // namespace wattprobe
