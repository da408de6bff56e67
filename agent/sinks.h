#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/base/sink.h"
#include "agent/options.h"
#include "agent/state/job_records.h"
#include "collectors/units/unit_spec.h"
#include "exporters/guest_energy.h"
#include "exporters/otlp.h"
#include "exporters/remote_write.h"

namespace wattprobe {

/// A sink the options ask for, with the name its start-up errors are reported under.
struct NamedSink {
  std::string name;
  std::unique_ptr<SnapshotSink> sink;
};

/// What the daemon's sinks are made from: each sink's own options (Options holds them), so the
/// sinks need nothing else of the daemon's.
struct SinkSettings {
  HostPaths paths;
  RemoteWriteOptions remote_write;  // off while url is empty
  OtlpOptions otlp;                 // off while endpoint is empty; the host named from paths
  GuestEnergyOptions guest_energy;  // off while dir is empty
  JobRecordOptions job_records;     // off while state_dir is empty
  UnitOptions units;                // off while no [unit.NAME] section
};

/// The daemon's own sinks, from the one table of sinks (agent/sinks.cc): remote-write, OTLP,
/// the guest energy folders, the job records, each when its option is set. `top --standalone` and
/// `validate` measure only, so they get none (no pushing, no files). Constructs only: nothing
/// starts before SnapshotSink::start, after the privilege drop.
std::vector<NamedSink> make_daemon_sinks(const SinkSettings& settings);
/// The same, from the daemon's options: the pipeline hands them over and names no sink.
std::vector<NamedSink> make_daemon_sinks(const Options& options);

}  // namespace wattprobe
