#include "agent/sinks.h"

#include "agent/state/checkpoint.h"
#include "exporters/guest_energy.h"
#include "exporters/otlp.h"
#include "exporters/remote_write.h"

namespace wattprobe {

namespace {

/// One line per sink: its name in start-up errors, whether the options ask for it, and how to
/// make it. Adding a sink is its file pair, its options and one line here.
struct SinkLine {
  const char* name;
  bool (*wanted)(const Options&);
  std::unique_ptr<SnapshotSink> (*make)(const Options&);
};

const SinkLine kSinks[] = {
    {"remote-write", [](const Options& o) { return !o.remote_write.url.empty(); },
     [](const Options& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<RemoteWrite>(o.remote_write);
     }},
    {"--guest-energy-dir", [](const Options& o) { return !o.guest_energy.dir.empty(); },
     [](const Options& o) -> std::unique_ptr<SnapshotSink> {
       return std::make_unique<GuestEnergyWriter>(o.guest_energy);
     }},
    {"OTLP", [](const Options& o) { return !o.otlp.endpoint.empty(); },
     [](const Options& o) -> std::unique_ptr<SnapshotSink> {
       OtlpOptions otlp = o.otlp;
       const HostIdentity host = read_host_identity(o.paths);
       otlp.host_name = host.hostname;
       otlp.host_id = host.machine_id;
       return std::make_unique<OtlpExporter>(std::move(otlp));
     }},
};

}  // namespace

std::vector<NamedSink> make_daemon_sinks(const Options& options) {
  std::vector<NamedSink> sinks;
  for (const SinkLine& line : kSinks) {
    if (line.wanted(options)) sinks.push_back({line.name, line.make(options)});
  }
  return sinks;
}

}  // namespace wattprobe
