#include "agent/cli/replacement.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/carbon/embodied.h"

namespace wattprobe {
namespace {

using ::testing::HasSubstr;

LedgerTotals one_hour(double joules, double operational_grams, double embodied_grams) {
  return LedgerTotals{0, 3600000, joules, operational_grams, embodied_grams, 3600};
}

TEST(Replacement, TakesItsFlagsAndLeavesTheReportsOwn) {
  std::vector<std::string> args{
      "--since",     "-24h", "--replacement-embodied-kg=500", "--replacement-power-ratio", "0.6",
      "--state-dir", "/x"};
  auto taken = take_replacement_options(args);
  ASSERT_TRUE(taken.ok()) << taken.error().message();
  const auto& o = *taken;
  ASSERT_TRUE(o);
  EXPECT_EQ(o->new_embodied_kg, 500);
  EXPECT_EQ(o->power_ratio, 0.6);
  EXPECT_EQ(args, (std::vector<std::string>{"--since", "-24h", "--state-dir", "/x"}));
  std::vector<std::string> none{"--since", "-24h"};
  ASSERT_TRUE(take_replacement_options(none).ok());
  EXPECT_FALSE(*take_replacement_options(none));
}

TEST(Replacement, RefusesAnIncompleteOrBadSet) {
  std::vector<std::string> alone{"--replacement-embodied-kg", "500"};
  EXPECT_THAT(take_replacement_options(alone).error().detail, HasSubstr("given together"));
  std::vector<std::string> zero{"--replacement-embodied-kg", "500", "--replacement-power-ratio",
                                "0"};
  EXPECT_THAT(take_replacement_options(zero).error().detail,
              HasSubstr("\"0\" for --replacement-power-ratio"));
  std::vector<std::string> pue{
      "--replacement-embodied-kg", "1", "--replacement-power-ratio", "0.5", "--pue", "1.2"};
  EXPECT_THAT(take_replacement_options(pue).error().detail, HasSubstr("needs --grid-intensity"));
}

TEST(Replacement, HandCalculationFromTheLedgersOwnIntensity) {
  // One hour: 0.1 kWh at 300 g/kWh (30 g), 10 g of embodied amortization.
  LedgerTotals sums = one_hour(0.1 * 3.6e6, 30, 10);
  ReplacementOptions o;
  o.new_embodied_kg = 500;
  o.power_ratio = 0.6;
  auto r = compute_replacement(o, sums, 0);
  ASSERT_TRUE(r.ok()) << r.error().message();
  const double hours = kSecondsPerYear / 3600;  // 8766
  EXPECT_NEAR(r->kwh_per_year, 0.1 * hours, 1e-9);
  EXPECT_NEAR(r->grams_per_kwh, 300, 1e-9);
  EXPECT_NEAR(r->keep_operational_grams, 30 * hours, 1e-6);
  EXPECT_NEAR(r->keep_embodied_grams, 10 * hours, 1e-6);
  EXPECT_NEAR(r->replace_embodied_grams, 500e3, 1e-9);
  EXPECT_NEAR(r->replace_operational_grams, 0.6 * 30 * hours, 1e-6);
  ASSERT_TRUE(r->break_even_years);
  EXPECT_NEAR(*r->break_even_years, 500e3 / (0.4 * 30 * hours), 1e-9);
}

TEST(Replacement, FlagsOverrideTheIntensityAndAmortizationEnds) {
  LedgerTotals sums = one_hour(0.1 * 3.6e6, 30, 10);
  ReplacementOptions o;
  o.new_embodied_kg = 100;
  o.power_ratio = 0.5;
  o.grid_intensity = 200;
  o.pue = 1.5;
  o.install_ms = parse_install_date("2022-01-01");
  o.lifetime_years = 4;
  // Half a year before the amortization ends: only that half year's embodied grams remain.
  const int64_t now = *o.install_ms + static_cast<int64_t>(3.5 * kSecondsPerYear * 1000);
  auto r = compute_replacement(o, sums, now);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->grams_per_kwh, 300, 1e-9);
  EXPECT_NEAR(*r->amortization_left_seconds, 0.5 * kSecondsPerYear, 1e-3);
  EXPECT_NEAR(r->keep_embodied_grams, 10.0 / 3600 * 0.5 * kSecondsPerYear, 1e-3);
}

TEST(Replacement, NoSavingsMeansNoBreakEven) {
  ReplacementOptions o;
  o.new_embodied_kg = 100;
  o.power_ratio = 1.2;
  auto r = compute_replacement(o, one_hour(3.6e6, 100, 0), 0);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->break_even_years);
  EXPECT_EQ(r->keep_embodied_grams, 0) << "a fully amortized device adds no embodied carbon";
}

TEST(Replacement, EmptyLedgerIsAnErrorNotADivisionByZero) {
  ReplacementOptions o;
  auto r = compute_replacement(o, LedgerTotals{}, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.error().detail, HasSubstr("no measured time or energy"));
}

}  // namespace
}  // namespace wattprobe
