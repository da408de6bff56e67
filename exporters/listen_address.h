#pragma once

#include <string>
#include <utility>

#include "agent/base/result.h"

namespace wattprobe {

/// One --listen value, "address:port" or "[v6]:port" (port 0: any free port), split into the
/// address and the port; an error says why not. A comma is refused: one address per --listen.
Result<std::pair<std::string, int>> split_listen_address(const std::string& listen);

}  // namespace wattprobe
