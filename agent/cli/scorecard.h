#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "agent/base/usage_error.h"
#include "agent/cli/scorecard_figures.h"
#include "agent/cli/scorecard_query.h"

namespace wattprobe {

/// A bad option or value: exit 2 with what() (it names the flag and the value).
using ScorecardUsageError = UsageError;

struct ScorecardOptions {
  PromConnection prometheus;
  int64_t start_ms = 0, end_ms = 0;  // the period [start, end)
  int64_t previous_start_ms = 0, previous_end_ms = 0;
  std::string period_name;
  std::string by = "namespace";
  /// A kube_pod_labels label (without its "label_" prefix) joined onto pod series by namespace
  /// and pod; `by` names it to group by it.
  std::string join_pod_label;
  std::string host_label = "instance";
  std::string out_dir;  // all three formats there; empty = `format` to stdout
  enum class Format { md, html, json } format = Format::md;
  std::size_t top = 5;
  /// Keep-or-replace inputs: the new device's embodied kg and its energy for the same work.
  std::optional<double> replacement_embodied_kg;
  std::optional<double> replacement_power_ratio;
};

/// Parses `wattprobe scorecard` arguments (without the command); reads the credential files.
/// Without --month or --since, the calendar month before `now_ms`. Throws ScorecardUsageError.
ScorecardOptions parse_scorecard_options(const std::vector<std::string>& args, int64_t now_ms);

std::string scorecard_help();

/// The PromQL of one figure, grouped by the options' group (joined when asked): exposed so
/// tests and the docs can show what an auditor reruns.
std::string scorecard_group_query(const ScorecardOptions& options, const std::string& per_series,
                                  const std::string& extra_labels = "");

/// Asks the server every question of the scorecard. An error names the query and the reason
/// (unreachable, HTTP status, timeout, malformed answer, a required family absent).
Result<Scorecard> gather_scorecard(const ScorecardOptions& options, PromClient& client,
                                   int64_t now_ms);

/// `wattprobe scorecard`: 0, 1 when the server fails or lacks the families, 2 on usage errors.
int run_scorecard(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace wattprobe
