#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/base/host_paths.h"
#include "agent/base/option_table.h"
#include "collectors/cpu/proc_stat.h"
#include "collectors/energy_source.h"

namespace wattprobe {

/// Coefficients of the linear CPU power model, in watts per vCPU.
///
/// Defaults are Cloud Carbon Footprint's AWS average (AWS_CLOUD_CONSTANTS.MIN_WATTS_AVG = 0.74,
/// MAX_WATTS_AVG = 3.5 in packages/aws/src/domain/AwsFootprintEstimationConstants.ts; the formula
/// is in CCF's microsite/docs/Methodology.md, "Energy Estimate (Watt-Hours)"), derived from
/// SPECpower results. docs/methodology.md lists the per-architecture figures.
struct ModelOptions {
  double min_watts_per_vcpu = 0.74;  // at 0 % utilisation
  double max_watts_per_vcpu = 3.5;   // at 100 % utilisation
  /// A whole board without a power sensor (a Raspberry Pi): its power at 0 % and 100 % CPU
  /// utilisation, set together in [source.model]. When set, the estimate is the board's, in
  /// domain platform, instead of the CPU package's per-vCPU figure.
  std::optional<double> board_idle_watts = std::nullopt;
  std::optional<double> board_max_watts = std::nullopt;
};

/// [source.model]; that the board's two figures come together is checked where they are read.
OptionTable<ModelOptions> model_option_table();

/// The error text for a bad option (`[source.model]` keys), or nullopt when the options are
/// usable: both finite, min ≥ 0, max ≥ min.
Result<bool> validate(const ModelOptions& options);

/// CCF's per-host CPU power: vcpus × (min + utilisation × (max − min)), or the board's
/// idle + utilisation × (max − idle) when the board figures are set. utilisation in 0..1.
double model_watts(int vcpus, double utilisation, const ModelOptions& options);

/// `model`: an estimate of the host's CPU package power from /proc/stat utilisation, for hosts
/// with no energy counter (VMs, ARM). It is never presented as a measurement: measured() is false.
class ModelSource : public EnergySource {
 public:
  ModelSource(HostPaths paths, ModelOptions options);

  std::string_view name() const override { return "model"; }
  bool measured() const override { return false; }
  Availability probe() override;
  /// One power_gauge Reading {domain "package", socket -1, key "cpu"} (with board figures:
  /// {domain "platform", key "board"}): the estimate covers the
  /// CPUs of the whole host, so it is not split per socket. Utilisation is over the time since the
  /// previous sample; the first sample uses the time since boot, which is still a real figure and
  /// spares the agent a tick of zero watts. Counters that went backwards (a restored VM, a
  /// different /proc) are taken as a reset: utilisation since the reset, never negative.
  Sample sample() override;

 private:
  HostPaths paths_;
  ModelOptions options_;
  bool have_previous_ = false;
  CpuTimes previous_;
  double last_utilisation_ = 0;
};

std::unique_ptr<EnergySource> make_model_source(const HostPaths& paths,
                                                const ModelOptions& options);

}  // namespace wattprobe
