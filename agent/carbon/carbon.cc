#include "agent/carbon/carbon.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

constexpr double kJoulesPerKwh = 3.6e6;
constexpr int64_t kMsPerDay = 86400000;

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

bool finite_in(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

std::chrono::milliseconds ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

OptionTable<CarbonOptions> carbon_option_table() {
  using C = CarbonOptions;
  OptionSpec<C> best_window{
      "best-window",
      "window sizes (whole minutes, comma-separated: 1h,4h) for the best-window gauges",
      [](C& c, const std::vector<OptionValue>& v) {
        std::string_view rest = v.back().value;
        while (true) {
          const std::size_t comma = rest.find(',');
          const OptionValue item{v.back().option, std::string(rest.substr(0, comma)),
                                 v.back().origin};
          auto d = duration_value(item, std::chrono::minutes(1), std::chrono::hours(168));
          if (d.count() % 60000 != 0) refuse_value(item, "expected whole minutes");
          c.best_windows.push_back({item.value, d.count()});
          if (comma == std::string_view::npos) break;
          rest.remove_prefix(comma + 1);
        }
      },
      [](const C&) { return std::string(); }};
  best_window.default_note = ": none";
  OptionSpec<C> budget{"carbon-budget",
                       "WORKLOAD=GRAMS/day|30d or kind:KIND=GRAMS/day|30d (repeatable)",
                       [](C& c, const std::vector<OptionValue>& values) {
                         for (const OptionValue& v : values) {
                           auto b = parse_budget(v.value);
                           if (!b.ok()) refuse_value(v, b.error().detail);
                           c.budgets.push_back(*b);
                         }
                       },
                       [](const C&) { return std::string(); }};
  budget.repeatable = true;
  return {
      number_option("pue", &C::pue, 1.0, 3.0, "power usage effectiveness of the facility"),
      std::move(best_window),
      number_option("embodied-kg", &C::embodied_kg, 0, 1e6,
                    "embodied kgCO2e of this device, replacing the inventory estimate"),
      text_option("install-date", &C::install_date, "YYYY-MM-DD the device entered service"),
      number_option("lifetime-years", &C::lifetime_years, 0.1, 50,
                    "expected service life for amortization"),
      std::move(budget),
  };
}

Result<CarbonBudget> parse_budget(std::string_view text) {
  Error bad{ErrorKind::malformed, "budget",
            quote_for_error(text) +
                " is not TARGET=GRAMS/WINDOW (e.g. nginx.service=500/day, "
                "kind:pod=20000/30d)"};
  text = trim(text);
  size_t eq = text.rfind('=');
  if (eq == std::string_view::npos || eq == 0) return bad;
  std::string_view target = trim(text.substr(0, eq));
  std::string_view rest = trim(text.substr(eq + 1));
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad;
  CarbonBudget b;
  std::string_view window = trim(rest.substr(slash + 1));
  if (window == "day") {
    b.window = CarbonBudget::Window::day;
  } else if (window == "30d") {
    b.window = CarbonBudget::Window::days30;
  } else {
    return bad;
  }
  auto grams = parse_double(rest.substr(0, slash), "budget");
  if (!grams || !finite_in(*grams, 0, 1e12) || *grams == 0) return bad;
  b.grams = *grams;
  if (target.substr(0, 5) == "kind:") {
    b.kind = target.substr(5);
    if (b.kind.empty()) return bad;
  } else {
    b.workload = target;
  }
  return b;
}

Result<bool> validate(const CarbonOptions& o) {
  if (!finite_in(o.grid_intensity, 0, kMaxGramsPerKwh)) {
    return invalid("grid-intensity",
                   fmt(o.grid_intensity) + " g/kWh is outside 0.." + fmt(kMaxGramsPerKwh));
  }
  if (!finite_in(o.pue, 1.0, 3.0)) {
    return invalid("pue", fmt(o.pue) + " is outside 1.0..3.0 (1.0 = no facility overhead)");
  }
  if (!finite_in(o.lifetime_years, 0.1, 30)) {
    return invalid("lifetime-years", fmt(o.lifetime_years) + " is outside 0.1..30");
  }
  if (o.embodied_kg && !finite_in(*o.embodied_kg, 0, 1e6)) {
    return invalid("embodied-kg", fmt(*o.embodied_kg) + " is outside 0..1000000");
  }
  if (!o.install_date.empty()) {
    auto t = parse_install_date(o.install_date);
    if (!t) return invalid("install-date", "\"" + o.install_date + "\" is not a date YYYY-MM-DD");
    if (*t > wall_ms()) return invalid("install-date", o.install_date + " is in the future");
  }
  if (o.refresh_seconds && !finite_in(*o.refresh_seconds, 1, 86400)) {
    return invalid("grid-refresh", fmt(*o.refresh_seconds) + " s is outside 1..86400");
  }
  if (!finite_in(o.connect_timeout_seconds, 0.1, 120)) {
    return invalid("grid-connect-timeout",
                   fmt(o.connect_timeout_seconds) + " s is outside 0.1..120");
  }
  if (!finite_in(o.timeout_seconds, 0.1, 600)) {
    return invalid("grid-timeout", fmt(o.timeout_seconds) + " s is outside 0.1..600");
  }
  if (!finite_in(o.max_age_seconds, 1, 30 * 86400.0)) {
    return invalid("grid-max-age", fmt(o.max_age_seconds) + " s is outside 1..2592000");
  }
  for (const auto& b : o.budgets) {
    if (!finite_in(b.grams, 0, 1e12) || b.grams == 0 || (b.workload.empty() == b.kind.empty())) {
      return invalid("budget", (b.workload.empty() ? "kind:" + b.kind : b.workload) + "=" +
                                   fmt(b.grams) + " needs one target and grams > 0");
    }
  }
  return true;
}

Carbon::Carbon(HostPaths paths, CarbonOptions options, std::unique_ptr<GridProvider> provider,
               GridCadence cadence)
    : paths_(std::move(paths)), options_(std::move(options)) {
  if (!options_.install_date.empty()) install_ms_ = parse_install_date(options_.install_date);
  inventory_ = read_inventory(paths_);
  inventory_.listed_gpus = options_.listed_gpus;
  embodied_ = embodied_from_inventory(inventory_, options_.embodied_table, options_.embodied_kg);
  GridIntensityOptions g;
  g.static_grams_per_kwh = options_.grid_intensity;
  g.zone = options_.zone;
  g.live = cadence.live;
  g.refresh = ms(options_.refresh_seconds.value_or(cadence.default_refresh_seconds));
  g.max_age = ms(options_.max_age_seconds);
  g.min_backoff = std::min(ms(options_.min_backoff_seconds), g.refresh);
  grid_ = std::make_unique<GridIntensity>(std::move(provider), g);
  for (const auto& b : options_.budgets) budgets_.push_back(BudgetState{b, {}, -1});
}

Carbon::~Carbon() { stop(); }

void Carbon::start(std::function<void(const std::string&)> log) { grid_->start(std::move(log)); }
void Carbon::stop() { grid_->stop(); }

Longevity Carbon::longevity_at(int64_t now_ms) const {
  return longevity(embodied_.total_grams, install_ms_, options_.lifetime_years, now_ms);
}

double Carbon::BudgetState::consumption() const {
  if (last_day < 0) return 0;
  if (budget.window == CarbonBudget::Window::day) return day_grams[last_day % 30];
  double sum = 0;
  for (double g : day_grams) sum += g;
  return sum;
}

void Carbon::charge_budgets(const WorkloadId& id, double grams, int64_t day) {
  for (auto& b : budgets_) {
    bool match =
        b.budget.workload.empty() ? id.kind == b.budget.kind : id.workload == b.budget.workload;
    if (!match) continue;
    if (b.last_day != day) {
      // Clear the days skipped since the last charge; a whole window of silence clears all.
      int64_t from = b.last_day < 0 ? day - 29 : b.last_day + 1;
      for (int64_t d = std::max(from, day - 29); d <= day; ++d) b.day_grams[d % 30] = 0;
      b.last_day = std::max(b.last_day, day);
    }
    if (day == b.last_day) b.day_grams[day % 30] += grams;
  }
}

void Carbon::restore(CarbonTotals totals) {
  totals_ = std::move(totals);
  cfe_seen_ = cfe_seen_ || totals_.idle.cfe_joules > 0 || totals_.unattributed_cfe_joules > 0;
  std::erase_if(totals_.last_seen_ms,
                [&](const auto& e) { return !totals_.workloads.contains(e.first); });
}

void Carbon::restore_budgets(const std::vector<BudgetState>& saved) {
  for (auto& b : budgets_) {
    for (const auto& s : saved) {
      if (s.budget.workload == b.budget.workload && s.budget.kind == b.budget.kind &&
          s.budget.window == b.budget.window) {
        b.day_grams = s.day_grams;
        b.last_day = s.last_day;
        break;
      }
    }
  }
}

const CarbonTickGrams& Carbon::on_tick(const EnergyTick& tick) {
  GridIntensity::InForce in_force = grid_->at(tick.end_ms);
  // gCO2e = J / (3.6e6 J/kWh) × PUE × g/kWh.
  const double pue = in_force.pue.value_or(options_.pue);
  const double g_per_joule = pue * in_force.grams_per_kwh / kJoulesPerKwh;
  // CFE joules per joule: the facility's energy (× PUE) times the carbon-free share in force.
  const double cfe_per_joule = in_force.cfe_percent ? pue * *in_force.cfe_percent / 100 : 0;
  if (in_force.cfe_percent) cfe_seen_ = true;
  const int64_t from_ms = tick.end_ms - static_cast<int64_t>(std::llround(tick.seconds * 1000));
  const double embodied = amortized_grams(embodied_.total_grams, install_ms_,
                                          options_.lifetime_years, from_ms, tick.end_ms);
  const int64_t day = tick.end_ms / kMsPerDay;
  history_.record(from_ms, tick.end_ms, in_force.grams_per_kwh);
  double shared = 0;
  CarbonTickGrams& added = last_tick_grams_;
  added.end_ms = tick.end_ms;
  added.cfe_matched_pue = in_force.cfe_percent ? pue : 0;
  added.workloads.clear();
  for (const auto& w : tick.workloads) {
    CarbonGrams& g = totals_.workloads[w.id];
    double op = w.joules * g_per_joule;
    double share = std::clamp(w.host_share, 0.0, 1.0);
    double em = embodied * share;
    shared += em;
    const double cfe = w.joules * cfe_per_joule;
    g.operational += op;
    g.embodied += em;
    g.cfe_joules += cfe;
    added.workloads.push_back({op, em, cfe});
    if (!budgets_.empty()) charge_budgets(w.id, op + em, day);
  }
  // Shares sum to at most 1; rounding past it must not make idle negative.
  added.idle = {tick.idle_joules * g_per_joule, std::max(0.0, embodied - shared),
                tick.idle_joules * cfe_per_joule};
  added.unattributed_operational = tick.unattributed_joules * g_per_joule;
  added.unattributed_cfe_joules = tick.unattributed_joules * cfe_per_joule;
  totals_.idle.operational += added.idle.operational;
  totals_.idle.embodied += added.idle.embodied;
  totals_.idle.cfe_joules += added.idle.cfe_joules;
  totals_.unattributed_operational += added.unattributed_operational;
  totals_.unattributed_cfe_joules += added.unattributed_cfe_joules;
  last_tick_ms_ = tick.end_ms;
  for (const auto& w : tick.workloads) totals_.last_seen_ms[w.id] = tick.end_ms;
  forget_workloads(tick.end_ms);
  return added;
}

void Carbon::forget_run_bases() {
  if (run_base_.empty()) return;
  std::erase_if(run_base_, [&](const auto& e) { return !totals_.workloads.contains(e.first); });
}

void Carbon::add_run_grams(std::vector<EndedWorkload>& ended) {
  for (EndedWorkload& e : ended) {
    auto total = totals_.workloads.find(e.id);
    if (total == totals_.workloads.end()) continue;
    CarbonGrams& base = run_base_[e.id];
    e.operational_grams = std::max(0.0, total->second.operational - base.operational);
    e.embodied_grams = std::max(0.0, total->second.embodied - base.embodied);
    base = total->second;
  }
}

void Carbon::restore_ended_run(const WorkloadId& id) {
  if (auto total = totals_.workloads.find(id); total != totals_.workloads.end()) {
    run_base_[id] = total->second;
  }
}

void Carbon::forget_workloads(int64_t now_ms) {
  auto& seen = totals_.last_seen_ms;
  const int64_t expiry = options_.workload_expiry.count();
  for (auto it = totals_.workloads.begin(); it != totals_.workloads.end();) {
    auto s = seen.try_emplace(it->first, now_ms).first;
    if (now_ms - s->second > expiry) {
      seen.erase(s);
      it = totals_.workloads.erase(it);
    } else {
      ++it;
    }
  }
  if (totals_.workloads.size() <= options_.max_workloads) {
    forget_run_bases();
    return;
  }
  std::vector<std::pair<int64_t, const WorkloadId*>> by_age;
  by_age.reserve(totals_.workloads.size());
  for (const auto& [id, g] : totals_.workloads) by_age.emplace_back(seen.at(id), &id);
  const std::size_t excess = by_age.size() - options_.max_workloads;
  // Ties go by name, as attribution's do, so both keep the same workloads.
  std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(excess) - 1,
                   by_age.end(), [](const auto& a, const auto& b) {
                     return a.first != b.first ? a.first < b.first : *a.second < *b.second;
                   });
  std::vector<WorkloadId> gone;
  gone.reserve(excess);
  for (std::size_t i = 0; i < excess; ++i) gone.push_back(*by_age[i].second);
  for (const auto& id : gone) {
    seen.erase(id);
    totals_.workloads.erase(id);
  }
  forget_run_bases();
}

void Carbon::append_families(std::vector<Family>& out) const {
  int64_t now = last_tick_ms_ ? last_tick_ms_ : wall_ms();
  Family op{"wattprobe_workload_operational_co2e_grams_total",
            "Operational CO2e: energy x PUE x grid intensity in force at each tick (grams).",
            MetricType::counter,
            {}};
  Family em{"wattprobe_workload_embodied_co2e_grams_total",
            "Embodied CO2e amortized over the device lifetime, by host CPU share (grams).",
            MetricType::counter,
            {}};
  for (const auto& [id, g] : totals_.workloads) {
    op.series.push_back(Series{workload_labels(id), g.operational});
    em.series.push_back(Series{workload_labels(id), g.embodied});
  }
  out.push_back(std::move(op));
  out.push_back(std::move(em));
  if (cfe_seen_) {
    Family cfe{"wattprobe_workload_cfe_energy_joules_total",
               "Carbon-free energy (24/7 CFE): energy x PUE x the grid's carbon-free share in "
               "force at each tick (joules).",
               MetricType::counter,
               {}};
    for (const auto& [id, g] : totals_.workloads) {
      cfe.series.push_back(Series{workload_labels(id), g.cfe_joules});
    }
    out.push_back(std::move(cfe));
    out.push_back(Family{"wattprobe_node_idle_cfe_energy_joules_total",
                         "Carbon-free energy of the host's idle energy (joules).",
                         MetricType::counter,
                         {Series{{}, totals_.idle.cfe_joules}}});
    out.push_back(Family{"wattprobe_node_unattributed_cfe_energy_joules_total",
                         "Carbon-free energy of the energy no workload could be given (joules).",
                         MetricType::counter,
                         {Series{{}, totals_.unattributed_cfe_joules}}});
  }
  out.push_back(Family{"wattprobe_node_idle_operational_co2e_grams_total",
                       "Operational CO2e of the host's idle energy (grams).",
                       MetricType::counter,
                       {Series{{}, totals_.idle.operational}}});
  out.push_back(Family{"wattprobe_node_idle_embodied_co2e_grams_total",
                       "Embodied CO2e amortized to capacity no workload used (grams).",
                       MetricType::counter,
                       {Series{{}, totals_.idle.embodied}}});
  out.push_back(Family{"wattprobe_node_unattributed_operational_co2e_grams_total",
                       "Operational CO2e of energy no workload could be given (grams).",
                       MetricType::counter,
                       {Series{{}, totals_.unattributed_operational}}});
  grid_->append_families(out, now);
  if (!options_.best_windows.empty()) append_best_windows(out, now);

  Family device{"wattprobe_device_embodied_co2e_grams",
                "Embodied CO2e of the device by component (grams).",
                MetricType::gauge,
                {}};
  for (const auto& [c, g] : embodied_.grams_by_component) {
    device.series.push_back(Series{{{"component", c}}, g});
  }
  out.push_back(std::move(device));
  Longevity l = longevity_at(now);
  out.push_back(Family{"wattprobe_device_expected_lifetime_seconds",
                       "Expected lifetime over which embodied carbon is amortized.",
                       MetricType::gauge,
                       {Series{{}, l.lifetime_seconds}}});
  if (l.age_seconds) {
    out.push_back(Family{"wattprobe_device_age_seconds",
                         "Age of the device since its install date.",
                         MetricType::gauge,
                         {Series{{}, *l.age_seconds}}});
    out.push_back(Family{"wattprobe_device_amortized_ratio",
                         "Share of the embodied carbon already amortized, min(age/lifetime, 1).",
                         MetricType::gauge,
                         {Series{{}, *l.amortized_ratio}}});
  }
  if (!budgets_.empty()) {
    Family budget{"wattprobe_workload_carbon_budget_grams",
                  "Carbon budget (operational + embodied grams) per window.",
                  MetricType::gauge,
                  {}};
    Family used{"wattprobe_workload_carbon_budget_consumption_grams",
                "Grams used in the current budget window (UTC day, or last 30 UTC days).",
                MetricType::gauge,
                {}};
    Family left{"wattprobe_workload_carbon_budget_remaining_grams",
                "Budget minus consumption; negative when overspent.",
                MetricType::gauge,
                {}};
    for (const auto& b : budgets_) {
      Labels labels{{"workload", b.budget.workload},
                    {"kind", b.budget.kind},
                    {"window", b.budget.window == CarbonBudget::Window::day ? "day" : "30d"}};
      // A window that has rolled past without a charge has consumed nothing yet.
      double c = b.last_day == now / kMsPerDay ? b.consumption() : 0;
      if (b.budget.window == CarbonBudget::Window::days30 && b.last_day >= 0 &&
          b.last_day != now / kMsPerDay) {
        c = 0;
        for (int64_t d = std::max(b.last_day - 29, now / kMsPerDay - 29); d <= b.last_day; ++d) {
          c += b.day_grams[d % 30];
        }
      }
      budget.series.push_back(Series{labels, b.budget.grams});
      used.series.push_back(Series{labels, c});
      left.series.push_back(Series{labels, b.budget.grams - c});
    }
    out.push_back(std::move(budget));
    out.push_back(std::move(used));
    out.push_back(std::move(left));
  }
}

ForecastAnswer usable_forecast(const std::optional<IntensityReading>& reading, int64_t fetched_ms,
                               int64_t now_ms, int64_t max_age_ms, std::string_view provider) {
  ForecastAnswer out;
  out.generated_ms = fetched_ms;
  const std::string who = "grid provider " + std::string(provider);
  if (!reading) {
    out.unusable = who + " has not answered yet";
    return out;
  }
  out.zone = reading->zone;
  const std::string max_age = format_number(max_age_ms / 1000.0) + " s";
  std::vector<ForecastPoint> points;
  if (!reading->schedule.empty()) {
    const IntensityPoint* in_force = nullptr;
    bool ahead = false;
    for (const auto& p : reading->schedule) {
      if (p.time_ms <= now_ms) in_force = &p;
      if (p.time_ms > now_ms) ahead = true;
      points.push_back({p.time_ms, p.grams_per_kwh});
    }
    if (!ahead) {
      out.unusable = "the schedule has no point after now (its last is at " +
                     format_rfc3339(reading->schedule.back().time_ms) + ")";
      return out;
    }
    if (in_force && now_ms - in_force->time_ms > max_age_ms) {
      out.unusable = "the schedule's point in force began at " + format_rfc3339(in_force->time_ms) +
                     ", longer ago than --grid-max-age (" + max_age + ")";
      return out;
    }
  } else {
    if (now_ms - fetched_ms > max_age_ms) {
      out.unusable = "the last forecast was fetched at " + format_rfc3339(fetched_ms) +
                     ", longer ago than --grid-max-age (" + max_age + ")";
      return out;
    }
    if (reading->forecast.empty()) {
      out.unusable = who + " gave no forecast";
      return out;
    }
    for (const auto& p : reading->forecast) points.push_back({p.time_ms, p.grams_per_kwh});
  }
  auto forecast = forecast_from_points(std::move(points));
  if (!forecast) {
    out.unusable = "the forecast has a single point, so how long it holds is unknown";
    return out;
  }
  if (forecast->end_ms <= now_ms) {
    out.unusable = "the forecast ends at " + format_rfc3339(forecast->end_ms) + ", before now";
    return out;
  }
  out.forecast = std::move(forecast);
  return out;
}

ForecastAnswer Carbon::forecast_at(int64_t now_ms) const {
  if (!grid_->live()) {
    ForecastAnswer a;
    a.zone = options_.zone;
    a.unusable = "grid provider " + std::string(grid_->provider_name()) + " publishes no forecast";
    return a;
  }
  GridIntensity::Status st = grid_->status();
  ForecastAnswer a =
      usable_forecast(st.last_good, st.last_good_ms, now_ms,
                      static_cast<int64_t>(options_.max_age_seconds * 1000), st.provider);
  if (a.zone.empty()) a.zone = options_.zone;
  if (!st.last_good && !st.last_error.empty()) a.unusable += " (" + st.last_error + ")";
  return a;
}

void Carbon::append_best_windows(std::vector<Family>& out, int64_t now_ms) const {
  Family start{"wattprobe_grid_best_window_start_timestamp_seconds",
               "Start of the lowest-intensity window of each --best-window size in the forecast "
               "(Unix seconds); absent while no forecast is usable.",
               MetricType::gauge,
               {}};
  Family grams{"wattprobe_grid_best_window_grams_per_kwh",
               "Time-weighted mean forecast intensity over that window (gCO2e per kWh).",
               MetricType::gauge,
               {}};
  ForecastAnswer a = forecast_at(now_ms);
  if (a.forecast) {
    const Forecast from_now = clip_forecast(*a.forecast, now_ms / 1000 * 1000, a.forecast->end_ms);
    for (const auto& size : options_.best_windows) {
      auto best = best_window(forecast_windows(from_now, size.ms));
      if (!best) continue;
      Labels labels{{"zone", a.zone}, {"window", size.label}};
      start.series.push_back(Series{labels, static_cast<double>(best->start_ms) / 1000});
      grams.series.push_back(Series{labels, best->grams_per_kwh});
    }
  }
  out.push_back(std::move(start));
  out.push_back(std::move(grams));
}

std::string Carbon::doctor_report() const {
  std::ostringstream s;
  int64_t now = wall_ms();
  GridIntensity::Status st = grid_->status();
  GridIntensity::InForce in = grid_->at(now);
  s << "carbon:\n";
  s << "  grid provider: " << st.provider;
  if (!options_.zone.empty()) s << " (zone " << options_.zone << ")";
  s << "\n";
  s << "  intensity in force: " << fmt(in.grams_per_kwh) << " g/kWh, signal " << in.signal;
  if (grid_->live()) s << ", age " << fmt(in.age_seconds) << " s";
  s << "\n";
  if (grid_->live()) {
    s << "  fetches: " << st.fetches;
    if (st.last_good_ms)
      s << ", last good " << fmt((now - st.last_good_ms) / 1000.0) << " s ago";
    else
      s << ", no good fetch yet";
    s << "\n";
    if (!st.last_error.empty()) s << "  last error: " << st.last_error << "\n";
    for (const auto& [reason, n] : st.errors_by_reason) {
      s << "  errors " << reason << ": " << n << "\n";
    }
  }
  s << "  static default: " << fmt(options_.grid_intensity) << " g/kWh\n";
  s << "  PUE: " << fmt(options_.pue) << "\n";
  const auto& inv = inventory_;
  s << "  device: " << (inv.vendor.empty() ? "?" : inv.vendor) << " "
    << (inv.product.empty() ? "?" : inv.product) << "\n";
  s << "  cpu: " << (inv.cpu_model.empty() ? "?" : inv.cpu_model) << " x " << inv.sockets
    << " socket(s)\n";
  s << "  memory: " << fmt(inv.memory_bytes / (1024.0 * 1024 * 1024)) << " GiB\n";
  std::string_view gpus_from;
  const std::size_t gpus = counted_gpus(inv, &gpus_from);
  s << "  disks: " << inv.ssds.size() << " SSD, " << inv.hdds.size() << " HDD; GPUs: " << gpus
    << " (" << gpus_from;
  if (inv.listed_gpus && *inv.listed_gpus > 0 && inv.gpus.size() != gpus) {
    s << "; the PCI display class lists " << inv.gpus.size() << ", counted once";
  }
  s << ")\n";
  for (const auto& e : inv.problems) s << "  inventory problem: " << e.message() << "\n";
  s << "  embodied: " << fmt(embodied_.total_grams / 1000) << " kgCO2e ("
    << (options_.embodied_kg ? "declared with --embodied-kg" : "CCF model") << ")";
  for (const auto& [c, g] : embodied_.grams_by_component) {
    if (g > 0) s << " " << c << "=" << fmt(g / 1000) << "kg";
  }
  s << "\n";
  Longevity l = longevity_at(now);
  s << "  lifetime: " << fmt(options_.lifetime_years) << " years";
  if (l.age_seconds) {
    s << ", installed " << options_.install_date << ", age "
      << fmt(*l.age_seconds / kSecondsPerYear) << " years, amortized "
      << fmt(*l.amortized_ratio * 100) << "%";
  } else {
    s << ", install date unknown (amortizing at the full rate)";
  }
  s << ", rate " << fmt(l.grams_per_second * 3600) << " g/h\n";
  return s.str();
}

}  // namespace wattprobe
