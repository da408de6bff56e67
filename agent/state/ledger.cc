#include "agent/state/ledger.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <string_view>

#include "agent/base/log.h"
#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"
#include "agent/state/day_files.h"

namespace wattprobe {
namespace {

/// Past this many unwritten bytes (a full or read-only disk for hours), new lines are dropped
/// and counted rather than held in memory without bound.
constexpr std::size_t kMaxPendingBytes = 16 << 20;

}  // namespace

Ledger::Ledger(LedgerOptions options)
    : options_(std::move(options)),
      dir_(options_.state_dir / "ledger"),
      period_ms_(std::chrono::duration_cast<std::chrono::milliseconds>(options_.period).count()) {}

Ledger::~Ledger() { flush_all(); }

Result<bool> Ledger::open(int64_t now_ms) {
  // Prove now, not at the first period's end, that this user can create files there.
  if (auto ready = prepare_day_folder(dir_, "the ledger folder"); !ready.ok()) return ready;
  apply_retention(utc_day(now_ms));
  return true;
}

void Ledger::on_tick(const EnergyTick& tick, const CarbonTickGrams& grams) {
  if (grams.end_ms != tick.end_ms || grams.workloads.size() != tick.workloads.size()) {
    fail("the grams handed over are not those of the tick ending " +
         format_utc_instant(tick.end_ms) + "; the tick is left out of the ledger");
    return;
  }
  const double end = static_cast<double>(tick.end_ms);
  const double start = end - std::max(0.0, tick.seconds) * 1000;
  const auto index_of = [&](double ms) {
    return static_cast<int64_t>(std::floor(ms / static_cast<double>(period_ms_)));
  };
  int64_t first = index_of(start);
  int64_t last = index_of(end);
  // A tick ending exactly on a period's start covers nothing of that period.
  if (last > first && static_cast<double>(last * period_ms_) >= end) --last;
  if (last - first >= kMaxSplitPeriods || end <= start) first = last;
  double assigned = 0;
  for (int64_t i = first; i <= last; ++i) {
    double fraction = 1 - assigned;  // the last piece takes the rest, so the pieces add to 1
    if (i < last) {
      double lo = std::max(start, static_cast<double>(i * period_ms_));
      double hi = std::min(end, static_cast<double>((i + 1) * period_ms_));
      fraction = (hi - lo) / (end - start);
      assigned += fraction;
    }
    add(i, tick, grams, fraction);
  }
  // Every period that ended by the end of this tick is complete.
  flush_before(index_of(end));
}

void Ledger::add(int64_t index, const EnergyTick& tick, const CarbonTickGrams& grams,
                 double fraction) {
  Period& p = open_[index];
  p.covered_seconds += tick.seconds * fraction;
  p.measured = p.measured && tick.measured;
  for (std::size_t i = 0; i < tick.workloads.size(); ++i) {
    const auto& w = tick.workloads[i];
    Sums& s = p.workloads[w.id];
    s.joules += w.joules * fraction;
    s.gpu_joules += w.gpu_joules * fraction;
    s.cpu_seconds += static_cast<double>(w.cpu_ns) / 1e9 * fraction;
    s.operational += grams.workloads[i].operational * fraction;
    s.embodied += grams.workloads[i].embodied * fraction;
    s.cfe_joules += grams.workloads[i].cfe_joules * fraction;
    s.cfe_matched_joules += w.joules * grams.cfe_matched_pue * fraction;
  }
  p.idle.joules += tick.idle_joules * fraction;
  p.idle.gpu_joules += tick.idle_gpu_joules * fraction;
  p.idle.operational += grams.idle.operational * fraction;
  p.idle.embodied += grams.idle.embodied * fraction;
  p.idle.cfe_joules += grams.idle.cfe_joules * fraction;
  p.idle.cfe_matched_joules += tick.idle_joules * grams.cfe_matched_pue * fraction;
  p.unattributed.joules += tick.unattributed_joules * fraction;
  p.unattributed.gpu_joules += tick.unattributed_gpu_joules * fraction;
  p.unattributed.operational += grams.unattributed_operational * fraction;
  p.unattributed.cfe_joules += grams.unattributed_cfe_joules * fraction;
  p.unattributed.cfe_matched_joules += tick.unattributed_joules * grams.cfe_matched_pue * fraction;
}

void Ledger::count_units(const std::vector<Family>& families, int64_t now_ms) {
  for (const Family& f : families) {
    if (f.name != "wattprobe_workload_functional_units_total") continue;
    const int64_t index =
        static_cast<int64_t>(std::floor(static_cast<double>(now_ms) / period_ms_));
    for (const Series& s : f.series) {
      std::pair<std::string, std::string> key;
      for (const auto& [name, value] : s.labels) {
        if (name == "unit") key.first = value;
        if (name == "workload") key.second = value;
      }
      // The family counts from 0 at each start: a series first seen brings what it has.
      auto it = units_seen_.try_emplace(key, 0.0).first;
      const double rise = std::max(0.0, s.value - it->second);
      it->second = s.value;
      if (rise > 0) open_[index].units[key] += rise;
    }
  }
}

void Ledger::flush_before(int64_t index) {
  bool wrote = false;
  while (!open_.empty() && open_.begin()->first < index) {
    write_period(open_.begin()->first, open_.begin()->second);
    open_.erase(open_.begin());
    wrote = true;
  }
  if (wrote) write_pending();
}

void Ledger::flush_all() {
  flush_before(INT64_MAX);
  if (!pending_.empty()) write_pending();
}

void Ledger::write_period(int64_t index, const Period& p) {
  const int64_t start_ms = index * period_ms_;
  int64_t day = utc_day(start_ms);
  if (!retention_day_ || day > *retention_day_) apply_retention(day);

  nlohmann::ordered_json head;
  head["v"] = kLedgerWorkloadLineVersion;
  head["start"] = format_utc_instant(start_ms);
  head["period_seconds"] = options_.period.count();
  head["covered_seconds"] = p.covered_seconds;
  head["measured"] = p.measured;
  auto line = [&](std::string_view type, const Sums& s, const WorkloadId* id) {
    nlohmann::ordered_json j = head;
    j["type"] = type;
    if (id) {
      j["workload"] = id->workload;
      j["kind"] = id->kind;
      // Only pods have these; leaving them out when empty keeps lines short.
      if (!id->namespace_.empty()) j["namespace"] = id->namespace_;
      if (!id->pod.empty()) j["pod"] = id->pod;
      if (!id->container.empty()) j["container"] = id->container;
    }
    j["joules"] = s.joules;
    j["gpu_joules"] = s.gpu_joules;
    j["cpu_seconds"] = s.cpu_seconds;
    j["operational_co2e_grams"] = s.operational;
    j["embodied_co2e_grams"] = s.embodied;
    // Only where a carbon-free share was in force: a provider without one writes no CFE.
    if (s.cfe_matched_joules > 0) {
      j["cfe_joules"] = s.cfe_joules;
      j["cfe_matched_joules"] = s.cfe_matched_joules;
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  };

  std::vector<const std::pair<const WorkloadId, Sums>*> rows;
  rows.reserve(p.workloads.size());
  for (const auto& entry : p.workloads) rows.push_back(&entry);
  std::sort(rows.begin(), rows.end(), [](const auto* a, const auto* b) {
    return std::tie(a->first.kind, a->first.workload) < std::tie(b->first.kind, b->first.workload);
  });
  std::string text;
  for (const auto* r : rows) text += line("workload", r->second, &r->first);
  text += line("idle", p.idle, nullptr);
  text += line("unattributed", p.unattributed, nullptr);
  for (const auto& [key, units] : p.units) {
    nlohmann::ordered_json j = head;
    j["v"] = kLedgerSchemaVersion;
    j["type"] = "unit";
    j["unit"] = key.first;
    j["workload"] = key.second;  // the [unit.NAME]'s workload glob, as exported
    j["units"] = units;
    text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }

  std::size_t held = 0;
  for (const auto& [path, bytes] : pending_) held += bytes.size();
  if (held + text.size() > kMaxPendingBytes) {
    fail("period " + format_utc_instant(start_ms) + " dropped: " + std::to_string(held) +
         " bytes already wait for the disk");
    return;
  }
  pending_[day_file_path(dir_, start_ms)] += text;
}

void Ledger::write_pending() {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const std::filesystem::path& path = it->first;
    std::string& bytes = it->second;
    if (!fits_byte_cap(bytes.size())) {
      const auto lines = static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
      lines_dropped_for_size_ += lines;
      const int64_t today = retention_day_.value_or(0);
      if (cap_logged_day_ != today) {
        fail("not writing " + path.string() + ": the day files would pass --ledger-max-bytes " +
             std::to_string(options_.max_bytes) +
             " with no closed day left to delete; this day's periods are dropped (counted in "
             "wattprobe_agent_ledger_lines_dropped_for_size_total) until the next day");
        cap_logged_day_ = today;
      }
      it = pending_.erase(it);
      continue;
    }
    const AppendResult appended = append_to_day_file(dir_, path, bytes);
    lines_written_ += static_cast<uint64_t>(std::count(
        bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(appended.written), '\n'));
    disk_bytes_ += appended.written;
    bytes.erase(0, appended.written);
    if (!bytes.empty()) {
      fail(appended.error + "; " + std::to_string(bytes.size()) +
           " bytes kept for the next period");
      return;  // keep everything for the next period
    }
    if (!appended.error.empty()) fail(appended.error);  // written, not synced
    it = pending_.erase(it);
  }
}

void Ledger::apply_retention(int64_t today) {
  retention_day_ = today;
  apply_byte_cap(today);
  if (options_.retention_days == 0) return;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) {
    if (ec && ec != std::errc::no_such_file_or_directory) {
      fail("cannot list " + dir_.string() + " for retention: " + ec.message());
    }
    return;
  }
  for (const DayFile& file : list_day_files(dir_)) {
    // The file's day ends at day + 1; delete once that is more than retention_days ago.
    if (file.day + 1 + static_cast<int64_t>(options_.retention_days) > today) continue;
    std::error_code rm;
    std::filesystem::remove(file.path, rm);
    if (rm) fail("cannot delete " + file.path.string() + ": " + rm.message());
  }
}

bool Ledger::fits_byte_cap(std::size_t more) {
  if (options_.max_bytes == 0) return true;
  if (disk_bytes_ + more <= options_.max_bytes) return true;
  // Our count may be high (a file deleted by hand): list again, deleting closed days if need be.
  const int64_t today = retention_day_.value_or(std::numeric_limits<int64_t>::min());
  apply_byte_cap(today, more);
  return disk_bytes_ + more <= options_.max_bytes;
}

void Ledger::apply_byte_cap(int64_t today, uint64_t more) {
  if (options_.max_bytes == 0) return;
  std::map<int64_t, std::pair<std::filesystem::path, uint64_t>> closed;  // oldest first
  uint64_t total = 0;
  for (const DayFile& file : list_day_files(dir_)) {
    total += file.bytes;
    if (file.day < today) closed[file.day] = {file.path, file.bytes};
  }
  for (const auto& [day, file] : closed) {
    if (total + more <= options_.max_bytes) break;
    std::error_code rm;
    std::filesystem::remove(file.first, rm);
    if (rm) {
      fail("cannot delete " + file.first.string() + ": " + rm.message());
      continue;
    }
    total -= file.second;
    ++files_removed_for_size_;
    log_printf("ledger: deleted %s (%llu bytes): the day files passed --ledger-max-bytes %llu",
               file.first.c_str(), static_cast<unsigned long long>(file.second),
               static_cast<unsigned long long>(options_.max_bytes));
  }
  disk_bytes_ = total;
}

void Ledger::fail(const std::string& what) {
  ++errors_;
  log_printf("ledger: %s", what.c_str());
}

void Ledger::append_families(std::vector<Family>& out) const {
  out.push_back({"wattprobe_agent_ledger_lines_written_total",
                 "Lines appended to the ledger's day files.",
                 MetricType::counter,
                 {{{}, static_cast<double>(lines_written_)}}});
  out.push_back({"wattprobe_agent_ledger_errors_total",
                 "Ledger failures: folder, write, fsync, retention; each is logged.",
                 MetricType::counter,
                 {{{}, static_cast<double>(errors_)}}});
  out.push_back({"wattprobe_agent_ledger_lines_dropped_for_size_total",
                 "Ledger lines not written because today's file would pass --ledger-max-bytes "
                 "with no closed day file left to delete.",
                 MetricType::counter,
                 {{{}, static_cast<double>(lines_dropped_for_size_)}}});
  out.push_back({"wattprobe_agent_ledger_files_removed_for_size_total",
                 "Closed ledger day files deleted because the ledger passed --ledger-max-bytes.",
                 MetricType::counter,
                 {{{}, static_cast<double>(files_removed_for_size_)}}});
}

Result<LedgerLine> read_ledger_line(std::string_view text) {
  auto malformed = [](std::string detail) { return Error{ErrorKind::malformed, "", detail}; };
  if (text.empty()) return malformed("empty line");
  nlohmann::json j =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return malformed("not JSON (a line cut short by a crash looks like this): " +
                     quote_for_error(std::string(text)));
  }
  if (!j.is_object())
    return malformed("expected a JSON object, found " + quote_for_error(std::string(text)));

  auto field = [&](const char* name) -> const nlohmann::json* {
    auto it = j.find(name);
    return it == j.end() ? nullptr : &*it;
  };
  auto wrong = [&](const char* name, std::string_view expected) {
    const nlohmann::json* v = field(name);
    return malformed(std::string("field \"") + name + "\": expected " + std::string(expected) +
                     (v ? ", found " + quote_for_error(v->dump()) : ", found none"));
  };

  const nlohmann::json* v = field("v");
  if (!v || !v->is_number_integer()) return wrong("v", "the schema version, a whole number");
  if (v->get<int64_t>() > kLedgerSchemaVersion) {
    return malformed("schema version " + v->dump() + " is newer than this wattprobe reads (" +
                     std::to_string(kLedgerSchemaVersion) + ")");
  }
  if (v->get<int64_t>() < 1) return wrong("v", "the schema version, 1 or more");

  LedgerLine out;
  const nlohmann::json* start = field("start");
  std::optional<int64_t> start_ms;
  if (start && start->is_string()) start_ms = parse_utc_instant(start->get<std::string>());
  if (!start_ms) return wrong("start", "a UTC time such as \"2026-11-23T10:00:00Z\"");
  out.start_ms = *start_ms;

  const nlohmann::json* period = field("period_seconds");
  if (!period || !period->is_number_integer() || period->get<int64_t>() < 1) {
    return wrong("period_seconds", "a whole number of seconds, 1 or more");
  }
  const nlohmann::json* measured = field("measured");
  if (!measured || !measured->is_boolean()) return wrong("measured", "true or false");

  const nlohmann::json* type = field("type");
  if (!type || !type->is_string()) return wrong("type", "workload, idle or unattributed");
  out.type = type->get<std::string>();
  if (out.type == "unit") {
    const nlohmann::json* unit = field("unit");
    const nlohmann::json* workload = field("workload");
    const nlohmann::json* units = field("units");
    if (!unit || !unit->is_string() || unit->get<std::string>().empty()) {
      return wrong("unit", "a non-empty string");
    }
    if (!workload || !workload->is_string() || workload->get<std::string>().empty()) {
      return wrong("workload", "a non-empty string");
    }
    if (!units || !units->is_number() || !std::isfinite(units->get<double>()) ||
        units->get<double>() < 0) {
      return wrong("units", "a number, 0 or more");
    }
    out.unit = unit->get<std::string>();
    out.workload = workload->get<std::string>();
    out.units = units->get<double>();
    return out;
  }
  if (out.type != "workload" && out.type != "idle" && out.type != "unattributed") {
    return wrong("type", "workload, idle, unattributed or unit");
  }
  if (out.type == "workload") {
    const char* names[3] = {"workload", "kind", "namespace"};
    std::string* into[3] = {&out.workload, &out.kind, &out.namespace_};
    for (int i = 0; i < 3; ++i) {
      const nlohmann::json* s = field(names[i]);
      if (!s && i == 2) continue;  // only pods have a namespace
      if (!s || !s->is_string() || (i < 2 && s->get<std::string>().empty())) {
        return wrong(names[i], i == 2 ? "a string" : "a non-empty string");
      }
      *into[i] = s->get<std::string>();
    }
  }

  struct Number {
    const char* name;
    double* into;
  };
  for (Number n : {Number{"covered_seconds", &out.covered_seconds}, Number{"joules", &out.joules},
                   Number{"cpu_seconds", &out.cpu_seconds},
                   Number{"operational_co2e_grams", &out.operational_grams},
                   Number{"embodied_co2e_grams", &out.embodied_grams}}) {
    const nlohmann::json* x = field(n.name);
    if (!x || !x->is_number() || !std::isfinite(x->get<double>()) || x->get<double>() < 0) {
      return wrong(n.name, "a number, 0 or more");
    }
    *n.into = x->get<double>();
  }
  // Lines written before GPUs were counted apart have no gpu_joules: their GPU energy, if any,
  // is only in joules, so they add 0 here rather than being refused.
  if (const nlohmann::json* g = field("gpu_joules")) {
    if (!g->is_number() || !std::isfinite(g->get<double>()) || g->get<double>() < 0) {
      return wrong("gpu_joules", "a number, 0 or more");
    }
    out.gpu_joules = g->get<double>();
  }
  // Only lines written while a carbon-free share was in force carry these.
  for (Number n : {Number{"cfe_joules", &out.cfe_joules},
                   Number{"cfe_matched_joules", &out.cfe_matched_joules}}) {
    if (const nlohmann::json* x = field(n.name)) {
      if (!x->is_number() || !std::isfinite(x->get<double>()) || x->get<double>() < 0) {
        return wrong(n.name, "a number, 0 or more");
      }
      *n.into = x->get<double>();
    }
  }
  out.period_seconds = period->get<int64_t>();
  out.measured = measured->get<bool>();
  return out;
}

}  // namespace wattprobe
