#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "agent/base/host_paths.h"
#include "agent/carbon/carbon.h"
#include "agent/state/job_record_options.h"
#include "agent/state/ledger_options.h"
#include "agent/tick/attribution_options.h"
#include "collectors/energy/ipmi.h"
#include "collectors/energy/model.h"
#include "collectors/energy/redfish.h"
#include "collectors/units/unit_spec.h"
#include "exporters/guest_energy.h"
#include "exporters/otlp.h"
#include "exporters/remote_write.h"
#include "exporters/web_config.h"

namespace wattprobe {

struct Options {
  std::string config_file;
  /// --listen, once per address: every one serves the same endpoints.
  std::vector<std::string> listen = {"127.0.0.1:9887"};
  /// --web-config-file, read and checked at start-up: TLS and basic auth for the HTTP server.
  std::string web_config_file;
  WebConfig web;
  std::chrono::milliseconds interval{1000};
  HostPaths paths;
  std::vector<std::string> sources;  // empty: auto
  std::string accounting = "auto";   // auto | cgroup | bpf | procfs
  std::filesystem::path state_dir = "/var/lib/wattprobe";
  /// How often the cumulative totals are written to state_dir (and once more at stop): the most
  /// a kill -9 or a power cut can lose.
  std::chrono::milliseconds checkpoint_interval{std::chrono::seconds(30)};
  AttributionOptions attribution;
  std::size_t process_metrics_top = 0;
  std::size_t max_workloads = 5000;
  ModelOptions model;  // [source.model]
  std::filesystem::path nvml_library{"libnvidia-ml.so.1"};
  RedfishOptions redfish;  // --redfish-*
  IpmiOptions ipmi;        // --ipmi-*
  CarbonOptions carbon;
  RemoteWriteOptions remote_write;         // off while url is empty
  OtlpOptions otlp;                        // off while endpoint is empty
  LedgerOptions ledger;                    // its state_dir follows --state-dir
  JobRecordOptions job_records;            // its state_dir follows --state-dir
  UnitOptions units;                       // [unit.NAME] sections and --unit-window
  GuestEnergyOptions guest_energy;         // --guest-energy-dir; off while its dir is empty
  std::filesystem::path host_energy_path;  // --host-energy-path, for the `host` source
  /// The user to switch to after start-up; empty: default_run_user().
  std::string user;
  uint64_t max_ticks =
      0;  // stop after this many ticks (tests, benchmarks); 0 = run until signalled
};

}  // namespace wattprobe
