#include "agent/options.h"

namespace wattprobe {

SourceSettings source_settings(const Options& options) {
  return SourceSettings{options.paths, options.model, options.nvml_library,
                        options.host_energy_path, options.redfish};
}

AccountingSettings accounting_settings(const Options& options) {
  return AccountingSettings{options.accounting, options.paths, options.max_workloads,
                            options.process_metrics_top > 0};
}

}  // namespace wattprobe
