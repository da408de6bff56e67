#pragma once

#include "agent/accounting_choice.h"
#include "agent/options.h"
#include "collectors/registry.h"

namespace wattprobe {

/// What the energy sources are made from, out of the options. Here rather than in options.h,
/// so that the options, which every command parses, need nothing of the sources' registry.
inline SourceSettings source_settings(const Options& options) {
  return SourceSettings{options.paths,        options.model,
                        options.nvml_library, options.host_energy_path,
                        options.redfish,      options.ipmi};
}

/// How CPU time is accounted, out of the options.
inline AccountingSettings accounting_settings(const Options& options) {
  return AccountingSettings{options.accounting, options.paths, options.max_workloads,
                            options.process_metrics_top > 0};
}

}  // namespace wattprobe
