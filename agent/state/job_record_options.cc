#include "agent/state/job_record_options.h"

namespace wattprobe {

OptionTable<JobRecordOptions> job_record_option_table() {
  return {byte_cap_option("job-records-max-bytes", &JobRecordOptions::max_bytes,
                          "bound of the ended workloads' (batch jobs') records in state-dir/jobs")
              .note(" = 64 MiB; 0 no cap")};
}

}  // namespace wattprobe
