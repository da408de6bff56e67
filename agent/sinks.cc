#include "agent/sinks.h"

#include "agent/base/host_identity.h"
#include "collectors/units/units_sink.h"

namespace wattprobe {

namespace {

/// One line per sink: its name in start-up errors, whether the options ask for it, and how to
/// make it. Adding a sink is its file pair, its options and one line here.
struct SinkLine {
  const char* name;
  bool (*wanted)(const SinkSettings&);
  std::unique_ptr<SnapshotSink> (*make)(const SinkSettings&);
};

const SinkLine kSinks[] = {
    {"remote-write", [](const SinkSettings& o) { return !o.remote_write.url.empty(); },
     [](const SinkSettings& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<RemoteWrite>(o.remote_write);
     }},
    {"--guest-energy-dir", [](const SinkSettings& o) { return !o.guest_energy.dir.empty(); },
     [](const SinkSettings& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<GuestEnergyWriter>(o.guest_energy);
     }},
    {"OTLP", [](const SinkSettings& o) { return !o.otlp.endpoint.empty(); },
     [](const SinkSettings& o) -> std::unique_ptr<SnapshotSink> {
       OtlpOptions otlp = o.otlp;  // the resource every OTLP point belongs to
       const HostIdentity host = read_host_identity(o.paths);
       otlp.host_name = host.hostname;
       otlp.host_id = host.machine_id;
       return std::make_unique<OtlpExporter>(otlp);
     }},
    {"job records", [](const SinkSettings& o) { return !o.job_records.state_dir.empty(); },
     [](const SinkSettings& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<JobRecordWriter>(o.job_records);
     }},
    {"[unit.NAME]", [](const SinkSettings& o) { return !o.units.units.empty(); },
     [](const SinkSettings& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<UnitsSink>(o.units);
     }},
};

}  // namespace

std::vector<NamedSink> make_daemon_sinks(const SinkSettings& options) {
  std::vector<NamedSink> sinks;
  for (const SinkLine& line : kSinks) {
    if (line.wanted(options)) sinks.push_back({line.name, line.make(options)});
  }
  return sinks;
}

std::vector<NamedSink> make_daemon_sinks(const Options& options) {
  return make_daemon_sinks(SinkSettings{options.paths, options.remote_write, options.otlp,
                                        options.guest_energy, options.job_records, options.units});
}

}  // namespace wattprobe
