#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/snapshot.h"

namespace wattprobe {

/// What `wattprobe top` sorts the workloads by; each has a key in the footer.
enum class TopSort { watts, cpu, co2e, name };

std::string_view to_string(TopSort sort);
/// --sort values: watts, cpu, co2e, name.
std::optional<TopSort> parse_top_sort(std::string_view text);
/// The key that selects a sort: w, c, g, n.
std::optional<TopSort> top_sort_for_key(char key);

/// One (source, domain) of the node, its sockets summed.
struct TopDomain {
  std::string source;
  std::string domain;
  double watts = 0;
  bool measured = true;
  bool in_host_sum = false;  // one of the non-overlapping domains the host total adds up
};

struct TopWorkload {
  std::string name;  // the workload label (pods: namespace/pod/container)
  std::string kind;
  double watts = 0;  // over the host's non-overlapping domains, last tick
  /// The workload's power in the `gpu` domain, last tick (part of `watts` where the host total
  /// adds the gpu domain); empty when it used no GPU.
  std::optional<double> gpu_watts;
  /// Operational CO2e rate between the two snapshots; empty without a previous value.
  std::optional<double> co2e_grams_per_hour;
  /// Share of the host's CPU capacity (0..1) between the two snapshots.
  std::optional<double> cpu_share;
  bool measured = true;  // false when any of its energy is the model's estimate
};

/// Everything one screen shows, independent of the terminal.
struct TopFrame {
  std::string origin;  // where the figures come from: the URL, or "standalone"
  std::string status;  // a problem to show (agent unreachable, malformed answer); empty if none
  bool has_data = false;
  int64_t timestamp_ms = 0;
  double seconds = 0;  // between the two snapshots the rates come from; 0 for the first
  double host_watts = 0;
  bool host_measured = true;
  std::vector<std::string> host_domains;  // the domains host_watts adds up, e.g. package, dram
  std::optional<double> idle_watts;
  std::optional<double> grid_grams_per_kwh;
  std::string accounting_mode;
  /// The host has a `gpu` domain: the table then has a GPU W column, which a host without GPUs
  /// leaves to the workload names.
  bool has_gpu = false;
  std::vector<TopDomain> domains;      // sources in exposition order, domains within them
  std::vector<TopWorkload> workloads;  // sorted by `sort`
  TopSort sort = TopSort::watts;
};

struct TopFrameInput {
  std::string origin;
  TopSort sort = TopSort::watts;
  unsigned cpus = 1;  // online CPUs: the capacity a CPU share is of
};

/// Builds the frame from the current snapshot, with rates (CO2e, CPU) against `previous` when
/// given. Snapshots come from the in-process agent or from a parsed /metrics (the same families);
/// their timestamp_ms is the time base of the rates.
TopFrame build_top_frame(const Snapshot* previous, const Snapshot& current,
                         const TopFrameInput& input);

/// A frame with no figures yet, only a status line (waiting for the agent, or why not).
TopFrame empty_top_frame(const TopFrameInput& input, std::string status);

/// The number of ticks the agent has run (the tick-duration histogram's count), to tell a new
/// tick from a repeated scrape of the same one; empty if the snapshot does not say.
std::optional<uint64_t> snapshot_tick_count(const Snapshot& snapshot);

/// The frame as at most `height` lines, each at most `width` columns of visible text (ASCII
/// only, so any terminal over ssh shows it alike). With `attributes`, the title, header and
/// estimate marks carry ANSI SGR codes, which take no columns.
std::vector<std::string> render_top_frame(const TopFrame& frame, int width, int height,
                                          bool attributes);

}  // namespace wattprobe
