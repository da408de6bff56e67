#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "agent/base/ended_workload.h"

namespace wattprobe {

struct JobReportOptions {
  int64_t since_ms = 0;  // jobs that ended in [since, until)
  int64_t until_ms = 0;
  std::string kind;  // empty: every kind
  enum class Format { table, csv, json } format = Format::table;
  std::filesystem::path state_dir = "/var/lib/wattprobe";
};

/// Parses `wattprobe report --jobs` arguments (without the command and --jobs). Defaults: the 24
/// hours before `now_ms`, every kind, as a table. Throws UsageError naming the flag and the value.
JobReportOptions parse_job_report_options(const std::vector<std::string>& args, int64_t now_ms);

std::string job_report_help();

void print_job_report(const JobReportOptions& options, const std::vector<EndedWorkload>& jobs,
                      std::ostream& out);

/// `wattprobe report --jobs`: 0 when it prints, 1 when no job ended in the period, 2 on bad
/// arguments.
int run_job_report(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wattprobe
