#include "collectors/energy/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace wattprobe {

Result<bool> validate(const ModelOptions& options) {
  const double min = options.min_watts_per_vcpu;
  const double max = options.max_watts_per_vcpu;
  if (!std::isfinite(min))
    return invalid("[source.model]", "min_watts_per_vcpu must be a finite number");
  if (!std::isfinite(max))
    return invalid("[source.model]", "max_watts_per_vcpu must be a finite number");
  if (min < 0)
    return invalid("[source.model]", "min_watts_per_vcpu must be >= 0, got " + std::to_string(min));
  if (max < min) {
    return invalid("[source.model]", "max_watts_per_vcpu (" + std::to_string(max) +
                                         ") must be >= min_watts_per_vcpu (" + std::to_string(min) +
                                         ")");
  }
  if (options.board_idle_watts.has_value() != options.board_max_watts.has_value()) {
    return invalid("[source.model]", "board_idle_watts and board_max_watts are set together");
  }
  if (options.board_idle_watts) {
    const double idle = *options.board_idle_watts, top = *options.board_max_watts;
    if (!std::isfinite(idle) || !std::isfinite(top) || idle < 0 || top < idle) {
      return invalid("[source.model]", "board_max_watts (" + std::to_string(top) +
                                           ") must be >= board_idle_watts (" +
                                           std::to_string(idle) + ") >= 0");
    }
  }
  return true;
}

double model_watts(int vcpus, double utilisation, const ModelOptions& options) {
  utilisation = std::clamp(utilisation, 0.0, 1.0);
  if (options.board_idle_watts && options.board_max_watts) {
    return *options.board_idle_watts +
           utilisation * (*options.board_max_watts - *options.board_idle_watts);
  }
  return vcpus * (options.min_watts_per_vcpu +
                  utilisation * (options.max_watts_per_vcpu - options.min_watts_per_vcpu));
}

namespace {

std::string format_watts(double w) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", w);
  return buf;
}

}  // namespace

OptionTable<ModelOptions> model_option_table() {
  using M = ModelOptions;
  return {
      number_option("source.model.min_watts_per_vcpu", &M::min_watts_per_vcpu, 0, 1000,
                    "model: W per vCPU at 0 %"),
      number_option("source.model.max_watts_per_vcpu", &M::max_watts_per_vcpu, 0, 1000,
                    "model: W per vCPU at 100 %"),
      number_option("source.model.board_idle_watts", &M::board_idle_watts, 0, 10000,
                    "model: a sensorless board's W at 0 % CPU (with board_max_watts: a board "
                    "estimate)"),
      number_option("source.model.board_max_watts", &M::board_max_watts, 0, 10000,
                    "model: a sensorless board's W at 100 % CPU"),
  };
}

ModelSource::ModelSource(HostPaths paths, ModelOptions options)
    : paths_(std::move(paths)), options_(options) {}

Availability ModelSource::probe() {
  Availability a;
  if (auto valid = validate(options_); !valid.ok()) {
    a.reason = "invalid options: " + valid.error().message();
    return a;
  }
  auto stat = read_proc_stat(paths_);
  if (!stat) {
    a.reason = stat.error().message();
    a.remedy = "mount procfs (the agent's --procfs-root must hold proc/stat)";
    return a;
  }
  a.available = true;
  if (options_.board_idle_watts && options_.board_max_watts) {
    a.reason =
        "estimate of the whole board (platform): " + format_watts(*options_.board_idle_watts) +
        " + util × (" + format_watts(*options_.board_max_watts) + " − " +
        format_watts(*options_.board_idle_watts) +
        ") W, from [source.model] board_idle_watts and board_max_watts";
    return a;
  }
  a.reason = "estimate: " + std::to_string(stat->online_cpus()) + " vCPUs × (" +
             format_watts(options_.min_watts_per_vcpu) + " + util × (" +
             format_watts(options_.max_watts_per_vcpu) + " − " +
             format_watts(options_.min_watts_per_vcpu) +
             ")) W (Cloud Carbon Footprint AWS average)";
  return a;
}

Sample ModelSource::sample() {
  Sample s;
  auto stat = read_proc_stat(paths_);
  if (!stat) {
    s.errors.push_back(stat.error());
    return s;
  }
  const CpuTimes& now = stat->aggregate;

  uint64_t busy = now.busy();
  uint64_t total = now.total();
  if (have_previous_ && now.busy() >= previous_.busy() && now.total() >= previous_.total()) {
    busy -= previous_.busy();
    total -= previous_.total();
  }
  // Two samples inside one USER_HZ tick see no change: keep the last figure rather than report 0.
  double utilisation = last_utilisation_;
  if (total > 0) utilisation = std::clamp(static_cast<double>(busy) / total, 0.0, 1.0);
  last_utilisation_ = utilisation;
  previous_ = now;
  have_previous_ = true;

  Reading r;
  const bool board = options_.board_idle_watts.has_value();
  r.domain = board ? "platform" : "package";
  r.socket = -1;
  r.key = board ? "board" : "cpu";
  r.kind = ReadingKind::power_gauge;
  r.watts = model_watts(stat->online_cpus(), utilisation, options_);
  s.readings.push_back(std::move(r));
  return s;
}

std::unique_ptr<EnergySource> make_model_source(const HostPaths& paths,
                                                const ModelOptions& options) {
  return std::make_unique<ModelSource>(paths, options);
}

}  // namespace wattprobe
