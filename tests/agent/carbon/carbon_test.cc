#include "agent/carbon/carbon.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cmath>
#include <fstream>
#include <thread>

#include "agent/carbon/grid/electricitymaps.h"
#include "agent/carbon/grid/registry.h"
#include "tests/support/fake_grid_api.h"
#include "tests/support/settable_grid_provider.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::SettableProvider;
using testing::TempTree;

WorkloadId service(std::string name) { return WorkloadId{std::move(name), "service", "", "", ""}; }
WorkloadId pod(std::string ns, std::string p, std::string c) {
  return WorkloadId{ns + "/" + p + "/" + c, "pod", ns, p, c};
}

std::string date_years_ago(double years) {
  time_t t = static_cast<time_t>(wall_ms() / 1000 - years * kSecondsPerYear);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

const Series* find_series(const std::vector<Family>& fams, std::string_view name,
                          std::string_view label = {}, std::string_view value = {}) {
  for (const auto& f : fams) {
    if (f.name != name) continue;
    for (const auto& s : f.series) {
      if (label.empty()) return &s;
      for (const auto& [k, v] : s.labels)
        if (k == label && v == value) return &s;
    }
  }
  return nullptr;
}

void write_small_host(const TempTree& t) {
  t.write("sys/class/dmi/id/sys_vendor", "QEMU\n");
  t.write("sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n");
  t.write("proc/cpuinfo", "processor\t: 0\nmodel name\t: AMD EPYC 7B13\n\n");
  t.write("proc/meminfo", "MemTotal:        8000000 kB\n");
  t.write("sys/block/vda/queue/rotational", "1\n");
}

// The wiring hands carbon the GPUs NVML lists (CarbonOptions::listed_gpus); the device's embodied
// carbon, its metric and doctor count them once, not once more for the VM's emulated display.
TEST(Carbon, EmbodiedCountsTheGpusNvmlListsOnce) {
  TempTree t;
  write_small_host(t);
  t.write("sys/bus/pci/devices/0000:00:01.0/class", "0x030000\n");  // emulated VGA
  t.write("sys/bus/pci/devices/0000:00:05.0/class", "0x030200\n");  // the H200
  double intensity = 300;
  CarbonOptions o;
  Carbon pci_only(t.paths(), o, std::make_unique<SettableProvider>(&intensity));
  o.listed_gpus = 1;
  Carbon with_nvml(t.paths(), o, std::make_unique<SettableProvider>(&intensity));
  EXPECT_DOUBLE_EQ(pci_only.embodied().total_grams - with_nvml.embodied().total_grams, 150e3);
  std::vector<Family> fams;
  with_nvml.append_families(fams);
  EXPECT_DOUBLE_EQ(
      find_series(fams, "wattprobe_device_embodied_co2e_grams", "component", "gpu")->value, 150e3);
  std::string doctor = with_nvml.doctor_report();
  EXPECT_NE(doctor.find(
                "GPUs: 1 (listed by the GPU sources; the PCI display class lists 2, counted once)"),
            std::string::npos)
      << doctor;
  EXPECT_NE(pci_only.doctor_report().find("GPUs: 2 (pci display class)"), std::string::npos);
}

/// A provider publishing a carbon-free share the test sets, none while it is unset.
class CfeProvider : public GridProvider {
 public:
  explicit CfeProvider(std::optional<double>* share) : share_(share) {}
  std::string_view name() const override { return "electricitymaps"; }
  GridFetch fetch(int64_t now_ms) override {
    GridFetch f;
    f.reading = IntensityReading{300, "DE", "average", now_ms, {}, {}};
    f.reading->cfe_percent = *share_;
    return f;
  }

 private:
  std::optional<double>* share_;
};

TEST(Carbon, CfeJoulesAreTheGramsEnergyTimesPueTimesTheShareInForce) {
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.pue = 1.25;
  std::optional<double> share;  // none published at first: no CFE, and no CFE families
  Carbon carbon(t.paths(), o, std::make_unique<CfeProvider>(&share));
  carbon.grid().refresh_now(wall_ms());
  const WorkloadId web = service("nginx.service");
  auto has_cfe_family = [&] {
    std::vector<Family> out;
    carbon.append_families(out);
    for (const auto& f : out)
      if (f.name == "wattprobe_workload_cfe_energy_joules_total") return true;
    return false;
  };
  double want_web = 0, want_idle = 0, want_unattributed = 0;
  int64_t end = wall_ms();
  for (int i = 0; i < 9; ++i) {
    if (i == 3) share = 40;  // the provider starts publishing
    if (i == 6) share = 90;  // and the grid gets cleaner: only later ticks see it
    if (i == 3 || i == 6) carbon.grid().refresh_now(end);
    end += 1000;
    EnergyTick tick;
    tick.end_ms = end;
    tick.seconds = 1;
    tick.workloads = {{web, 10.0 + i, 0.5, 500000000}};
    tick.idle_joules = 20;
    tick.unattributed_joules = 0.5;
    const CarbonTickGrams& g = carbon.on_tick(tick);
    const double f = share ? 1.25 * *share / 100 : 0;
    EXPECT_DOUBLE_EQ(g.cfe_matched_pue, share ? 1.25 : 0);
    want_web += tick.workloads[0].joules * f;
    want_idle += tick.idle_joules * f;
    want_unattributed += tick.unattributed_joules * f;
    if (i == 2) {
      EXPECT_FALSE(has_cfe_family()) << "no share published: no CFE series";
    }
  }
  EXPECT_TRUE(has_cfe_family());
  const CarbonTotals& got = carbon.totals();
  // By hand for nginx: ticks 3-5 at 40 %, 6-8 at 90 %, J = 10 + i, PUE 1.25.
  EXPECT_NEAR(want_web, (13 + 14 + 15) * 1.25 * 0.4 + (16 + 17 + 18) * 1.25 * 0.9, 1e-9);
  EXPECT_NEAR(got.workloads.at(web).cfe_joules, want_web, want_web * 1e-12);
  EXPECT_NEAR(got.idle.cfe_joules, want_idle, want_idle * 1e-12);
  EXPECT_NEAR(got.unattributed_cfe_joules, want_unattributed, want_unattributed * 1e-12);
}

TEST(Carbon, OperationalFollowsTheIntensityInForceAtEachTick) {
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.pue = 1.2;
  double intensity = 300;
  Carbon carbon(t.paths(), o, std::make_unique<SettableProvider>(&intensity));
  carbon.grid().refresh_now(wall_ms());

  const WorkloadId web = service("nginx.service");
  const WorkloadId api = pod("shop", "api-7d9f", "app");
  double want_web = 0, want_api = 0, want_idle = 0, want_unattributed = 0;
  int64_t end = wall_ms();
  for (int i = 0; i < 10; ++i) {
    if (i == 6) {
      intensity = 120.5;  // the grid gets cleaner mid-run: only later ticks see it
      carbon.grid().refresh_now(end);
    }
    end += 1000;
    EnergyTick tick;
    tick.end_ms = end;
    tick.seconds = 1;
    tick.workloads = {{web, 12.5 + i, 0.25, 250000000}, {api, 3.75 * i, 0.125, 125000000}};
    tick.idle_joules = 20 + 0.1 * i;
    tick.unattributed_joules = 0.01 * i;
    tick.measured_joules = tick.workloads[0].joules + tick.workloads[1].joules + tick.idle_joules +
                           tick.unattributed_joules;
    carbon.on_tick(tick);
    double g_per_j = 1.2 * intensity / 3.6e6;
    want_web += tick.workloads[0].joules * g_per_j;
    want_api += tick.workloads[1].joules * g_per_j;
    want_idle += tick.idle_joules * g_per_j;
    want_unattributed += tick.unattributed_joules * g_per_j;
  }
  const CarbonTotals& got = carbon.totals();
  EXPECT_NEAR(got.workloads.at(web).operational, want_web, want_web * 1e-9);
  EXPECT_NEAR(got.workloads.at(api).operational, want_api, want_api * 1e-9);
  EXPECT_NEAR(got.idle.operational, want_idle, want_idle * 1e-9);
  EXPECT_NEAR(got.unattributed_operational, want_unattributed, want_unattributed * 1e-9);
  // By hand for nginx: ticks 0-5 at 300 g/kWh, 6-9 at 120.5; J = 12.5 + i.
  double by_hand = (6 * 12.5 + 15) * 1.2 * 300 / 3.6e6 + (4 * 12.5 + 30) * 1.2 * 120.5 / 3.6e6;
  EXPECT_NEAR(got.workloads.at(web).operational, by_hand, by_hand * 1e-9);

  std::vector<Family> fams;
  carbon.append_families(fams);
  const Series* s =
      find_series(fams, "wattprobe_workload_operational_co2e_grams_total", "pod", "api-7d9f");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->labels, (Labels{{"workload", "shop/api-7d9f/app"},
                               {"kind", "pod"},
                               {"namespace", "shop"},
                               {"pod", "api-7d9f"},
                               {"container", "app"}}));
  EXPECT_DOUBLE_EQ(s->value, want_api);
  s = find_series(fams, "wattprobe_node_idle_operational_co2e_grams_total");
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->value, want_idle);
  s = find_series(fams, "wattprobe_grid_carbon_intensity_grams_per_kwh");
  ASSERT_NE(s, nullptr);
  EXPECT_DOUBLE_EQ(s->value, 120.5);
}

TEST(Carbon, EmbodiedPastLifetimeChargesNothing) {
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.install_date = date_years_ago(5);
  o.lifetime_years = 4;
  auto made = make_carbon(t.paths(), o);
  Carbon& carbon = *made;
  EnergyTick tick;
  tick.end_ms = wall_ms();
  tick.seconds = 1;
  tick.workloads = {{service("a.service"), 5, 0.5, 0}};
  carbon.on_tick(tick);
  EXPECT_EQ(carbon.totals().workloads.at(service("a.service")).embodied, 0);
  EXPECT_EQ(carbon.totals().idle.embodied, 0);
  std::vector<Family> fams;
  carbon.append_families(fams);
  EXPECT_DOUBLE_EQ(find_series(fams, "wattprobe_device_amortized_ratio")->value, 1.0);
  EXPECT_NEAR(find_series(fams, "wattprobe_device_age_seconds")->value, 5 * kSecondsPerYear, 86400);
  EXPECT_DOUBLE_EQ(find_series(fams, "wattprobe_device_expected_lifetime_seconds")->value,
                   4 * kSecondsPerYear);
  // The inventory's HDD is in the figures: base 1000 kg + 50 kg.
  EXPECT_DOUBLE_EQ(
      find_series(fams, "wattprobe_device_embodied_co2e_grams", "component", "hdd")->value, 50e3);
}

TEST(Carbon, EmbodiedSharesSumToTheHostsAmortizedGrams) {
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.install_date = date_years_ago(1);
  o.lifetime_years = 4;
  auto made = make_carbon(t.paths(), o);
  Carbon& carbon = *made;
  const double total = 1050e3;  // base + one HDD; 8 GB is under the 16 in the base
  ASSERT_DOUBLE_EQ(carbon.embodied().total_grams, total);
  int64_t end = wall_ms();
  double ticks_seconds = 0;
  for (int i = 0; i < 20; ++i) {
    end += 500;
    EnergyTick tick;
    tick.end_ms = end;
    tick.seconds = 0.5;
    tick.workloads = {{service("a.service"), 1, 0.30, 0},
                      {service("b.service"), 1, 0.20 + 0.01 * i, 0}};
    carbon.on_tick(tick);
    ticks_seconds += 0.5;
  }
  std::vector<Family> fams;
  carbon.append_families(fams);
  EXPECT_NEAR(find_series(fams, "wattprobe_device_amortized_ratio")->value, 0.25, 1e-3);
  const auto& tot = carbon.totals();
  double host = total / (4 * kSecondsPerYear) * ticks_seconds;
  double a = tot.workloads.at(service("a.service")).embodied;
  double b = tot.workloads.at(service("b.service")).embodied;
  EXPECT_NEAR(a + b + tot.idle.embodied, host, host * 1e-9);
  EXPECT_NEAR(a, host * 0.30, host * 1e-9);
  EXPECT_GT(tot.idle.embodied, 0);
}

TEST(Carbon, RestoredTotalsKeepGrowing) {
  TempTree t;
  write_small_host(t);
  auto made = make_carbon(t.paths(), CarbonOptions{});
  Carbon& carbon = *made;
  CarbonTotals saved;
  saved.workloads[service("a.service")] = {10, 2};
  saved.idle = {5, 1};
  carbon.restore(saved);
  EnergyTick tick;
  tick.end_ms = wall_ms();
  tick.seconds = 1;
  tick.workloads = {{service("a.service"), 3.6e6 / 475, 0, 0}};  // exactly 1 g at 475 g/kWh
  carbon.on_tick(tick);
  EXPECT_NEAR(carbon.totals().workloads.at(service("a.service")).operational, 11, 1e-9);
  EXPECT_DOUBLE_EQ(carbon.totals().idle.operational, 5);
}

TEST(Carbon, ValidateNamesTheFieldAndValue) {
  CarbonOptions o;
  EXPECT_TRUE(validate(o).ok());
  o.pue = 0.9;
  EXPECT_EQ(validate(o).error().message(),
            "pue: malformed: 0.9 is outside 1.0..3.0 (1.0 = no facility overhead)");
  o = {};
  o.grid_provider = "em";
  EXPECT_EQ(validate_grid(o).error().path, "grid-provider");
  EXPECT_NE(validate_grid(o).error().detail.find("\"em\""), std::string::npos);
  o = {};
  o.install_date = "2024-02-30";
  EXPECT_EQ(validate(o).error().message(),
            "install-date: malformed: \"2024-02-30\" is not a date YYYY-MM-DD");
  o = {};
  o.grid_intensity = 6000;
  EXPECT_NE(validate(o).error().message().find("grid-intensity: malformed: 6000"),
            std::string::npos);
  o = {};
  o.grid_provider = "electricitymaps";
  EXPECT_EQ(validate_grid(o).error().message(),
            "grid-zone: malformed: required with grid-provider=electricitymaps (such as DE)");
  o = {};
  o.lifetime_years = 0;
  EXPECT_NE(validate(o).error().message().find("lifetime-years: malformed: 0"), std::string::npos);
}

TEST(Carbon, KeysNeverReachDoctorMetricsOrErrors) {
  testing::FakeGridApi api;
  ASSERT_TRUE(api.running());
  TempTree t;
  write_small_host(t);
  t.write("etc/em.token", std::string(testing::FakeGridApi::kToken) + "\n");
  CarbonOptions o;
  o.grid_provider = "electricitymaps";
  o.zone = "DE";
  o.grid_url = api.base_url();
  o.token_file = t.path("etc/em.token").string();
  o.timeout_seconds = 1;
  ASSERT_TRUE(validate_grid(o).ok());
  ASSERT_TRUE(validate(o).ok());
  api.set_value(338);
  auto made = make_carbon(t.paths(), o);
  Carbon& carbon = *made;
  carbon.start();
  // The first fetch runs on the refresh thread, so the agent's start never waits on the API.
  for (int i = 0; i < 500 && carbon.grid().at(wall_ms()).grams_per_kwh != 338; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_DOUBLE_EQ(carbon.grid().at(wall_ms()).grams_per_kwh, 338);
  api.set_mode("http401");
  carbon.grid().refresh_now(wall_ms());
  std::vector<Family> fams;
  carbon.append_families(fams);
  std::string doctor = carbon.doctor_report();
  carbon.stop();
  std::cout << doctor;
  EXPECT_NE(doctor.find("grid provider: electricitymaps (zone DE)"), std::string::npos);
  EXPECT_NE(doctor.find("338 g/kWh"), std::string::npos);
  EXPECT_NE(doctor.find("HTTP 401"), std::string::npos);
  EXPECT_NE(doctor.find("embodied: 1050 kgCO2e"), std::string::npos);
  EXPECT_EQ(doctor.find("SECRET"), std::string::npos);
  EXPECT_EQ(testing::flatten(fams).find("SECRET"), std::string::npos);
  EXPECT_DOUBLE_EQ(
      find_series(fams, "wattprobe_agent_grid_fetch_errors_total", "reason", "unauthorized")->value,
      1);
}

TEST(Carbon, MissingKeyStartsOnStaticAndSaysWhy) {
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.grid_provider = "electricitymaps";
  o.zone = "DE";
  o.grid_url = "http://127.0.0.1:1";
  o.token_file = "";
  o.token_env = "WATTPROBE_TEST_UNSET_TOKEN_VAR";
  auto made = make_carbon(t.paths(), o);
  Carbon& carbon = *made;
  carbon.grid().refresh_now(wall_ms());
  auto in = carbon.grid().at(wall_ms());
  EXPECT_DOUBLE_EQ(in.grams_per_kwh, 475);
  EXPECT_EQ(in.signal, "fallback");
  EXPECT_EQ(carbon.grid().status().errors_by_reason["no_credentials"], 1u);
  EXPECT_NE(carbon.doctor_report().find("$WATTPROBE_TEST_UNSET_TOKEN_VAR"), std::string::npos);
}

TEST(Carbon, BudgetsTrackConsumptionPerDayAndKind) {
  auto b = parse_budget("nginx.service=500/day");
  ASSERT_TRUE(b) << b.error().message();
  EXPECT_EQ(b->workload, "nginx.service");
  EXPECT_FALSE(parse_budget("nginx.service=lots/day"));
  EXPECT_FALSE(parse_budget("kind:=5/day"));
  EXPECT_FALSE(parse_budget("x=5/week"));
  TempTree t;
  write_small_host(t);
  CarbonOptions o;
  o.embodied_kg = 0;  // operational only, to count by hand
  o.budgets = {*b, *parse_budget("kind:pod=20000/30d")};
  auto made = make_carbon(t.paths(), o);
  Carbon& carbon = *made;
  const int64_t day0 = 1767225600000;  // 2026-01-01T00:00Z
  auto tick_at = [&](int64_t end, double joules) {
    EnergyTick tick;
    tick.end_ms = end;
    tick.seconds = 1;
    tick.workloads = {{service("nginx.service"), joules, 0, 0}, {pod("a", "b", "c"), joules, 0, 0}};
    carbon.on_tick(tick);
  };
  const double one_gram = 3.6e6 / 475;
  tick_at(day0 + 1000, 100 * one_gram);
  tick_at(day0 + 86400000 + 1000, 30 * one_gram);  // next UTC day
  std::vector<Family> fams;
  carbon.append_families(fams);
  auto value = [&](std::string_view family, std::string_view window) {
    const Series* s = find_series(fams, family, "window", window);
    return s ? s->value : -1;
  };
  EXPECT_NEAR(value("wattprobe_workload_carbon_budget_consumption_grams", "day"), 30, 1e-9);
  EXPECT_NEAR(value("wattprobe_workload_carbon_budget_remaining_grams", "day"), 470, 1e-9);
  EXPECT_NEAR(value("wattprobe_workload_carbon_budget_consumption_grams", "30d"), 130, 1e-9);
  EXPECT_DOUBLE_EQ(value("wattprobe_workload_carbon_budget_grams", "30d"), 20000);
}

TEST(Carbon, CostOfOneProviderRefresh) {
  testing::FakeGridApi api;
  ASSERT_TRUE(api.running());
  GridApiOptions e;
  e.base_url = api.base_url();
  e.zone = "DE";
  e.secret = testing::FakeGridApi::kToken;
  GridIntensity grid(std::make_unique<ElectricityMapsProvider>(e), {});
  grid.refresh_now(wall_ms());  // warm: connection, curl state
  rusage before{}, after{};
  getrusage(RUSAGE_SELF, &before);
  auto t0 = std::chrono::steady_clock::now();
  constexpr int kRefreshes = 100;
  for (int i = 0; i < kRefreshes; ++i) grid.refresh_now(wall_ms());
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  getrusage(RUSAGE_SELF, &after);
  auto secs = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  double cpu =
      secs(after.ru_utime) - secs(before.ru_utime) + secs(after.ru_stime) - secs(before.ru_stime);
  std::cout << "[cost] one refresh (latest + forecast, 2 GETs): " << cpu / kRefreshes * 1e3
            << " ms CPU, " << wall / kRefreshes * 1e3 << " ms wall; max RSS " << after.ru_maxrss
            << " kB (grew " << after.ru_maxrss - before.ru_maxrss << " kB over " << kRefreshes
            << " refreshes)\n";
  EXPECT_EQ(grid.status().errors_by_reason.size(), 0u);
  EXPECT_LT(cpu / kRefreshes, 0.05);
  // ASan's quarantine holds freed memory on purpose (gcc says so with __SANITIZE_ADDRESS__,
  // clang with __has_feature).
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WATTPROBE_TEST_ASAN 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(WATTPROBE_TEST_ASAN)
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 4096);
#endif
}

}  // namespace
}  // namespace wattprobe
