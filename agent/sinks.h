#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/base/sink.h"
#include "agent/options.h"

namespace wattprobe {

/// A sink the options ask for, with the name its start-up errors are reported under.
struct NamedSink {
  std::string name;
  std::unique_ptr<SnapshotSink> sink;
};

/// The daemon's own sinks, from the one table of sinks (agent/sinks.cc): remote-write, OTLP,
/// the guest energy folders, each when its option is set. `top --standalone` and `validate`
/// measure only, so they get none (no pushing, no files). Constructs only: nothing starts before
/// SnapshotSink::start, after the privilege drop.
std::vector<NamedSink> make_daemon_sinks(const Options& options);

}  // namespace wattprobe
