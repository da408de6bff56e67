#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

struct ReportOptions {
  int64_t since_ms = 0;  // periods starting in [since, until) count
  int64_t until_ms = 0;
  enum class GroupBy { workload, kind, namespace_ } by = GroupBy::workload;
  enum class Format { table, csv, json } format = Format::table;
  std::filesystem::path state_dir = "/var/lib/wattprobe";
  /// SCI (ISO/IEC 21031): R, the functional units served in the period (--functional-units),
  /// and what one is called (--functional-unit-name); without R no SCI is printed.
  std::optional<double> functional_units;
  std::string functional_unit_name = "unit";
  /// --per-unit: SCI per [unit.NAME] from the ledger's unit lines, R the units they counted.
  bool per_unit = false;
};

/// A --since/--until value: "2026-11-23T10:00:00Z", "2026-11-23" (its UTC midnight), "now", or
/// a time before now such as "-24h", "-30m", "-7d" (the units of --interval).
std::optional<int64_t> parse_report_time(std::string_view text, int64_t now_ms);

/// Parses `wattprobe report` arguments (without the command). Defaults: the 24 hours before
/// `now_ms`, by workload, as a table. Throws UsageError naming the flag and the value.
ReportOptions parse_report_options(const std::vector<std::string>& args, int64_t now_ms);

std::string report_help();

/// One row of the report: sums over the ledger lines of a group.
struct ReportRow {
  std::string group;
  double joules = 0;
  double gpu_joules = 0;  // the part of joules GPUs used (0 on lines written before it existed)
  double cpu_seconds = 0;
  double operational_grams = 0;
  double embodied_grams = 0;
  double measured_joules = 0;  // joules from periods where every source was measured
  /// 24/7 CFE: carbon-free joules, and the energy × PUE of the ticks they were matched in (a
  /// tick without a published carbon-free share adds to neither).
  double cfe_joules = 0;
  double cfe_matched_joules = 0;

  void add(const ReportRow& other);
};

struct LedgerSums {
  std::vector<ReportRow> groups;  // most energy first
  ReportRow idle{"idle"};
  ReportRow unattributed{"unattributed"};
  uint64_t lines = 0;    // lines counted
  uint64_t skipped = 0;  // malformed lines
  double covered_seconds = 0;
  std::vector<std::filesystem::path> files;  // day files read
  /// --per-unit: the units each (unit, workload glob) counted, and each workload's row.
  std::map<std::pair<std::string, std::string>, double> units;
  std::map<std::string, ReportRow> workloads;

  /// Every group plus idle and unattributed: the host's energy in the period.
  ReportRow total() const;
};

/// One ledger line as `report` reads it: the row it adds, or why it is skipped.
Result<ReportRow> parse_ledger_line(const std::string& text);

/// Reads the day files under <state_dir>/ledger that overlap [since, until) and sums the lines
/// whose period starts inside it; a period is counted whole or not at all. Malformed lines are
/// named on `warnings` ("file:line: what is wrong") and skipped.
LedgerSums sum_ledger(const ReportOptions& options, std::ostream& warnings);

void print_report(const ReportOptions& options, const LedgerSums& sums, std::ostream& out);

/// `wattprobe report`: 0 on success, 1 when the period holds no valid ledger line, 2 on bad
/// arguments (the message names the flag and the value).
int run_report(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wattprobe
