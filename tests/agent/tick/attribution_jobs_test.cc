#include <gtest/gtest.h>

#include "agent/tick/attribution.h"

namespace wattprobe {
namespace {

const WorkloadId kJob{"run-u7.service", "service", "", "", ""};
const WorkloadId kOther{"nginx.service", "service", "", "", ""};

NodeEnergy node(double package, double dram) {
  NodeEnergy e;
  e.seconds = 1.0;
  for (auto [domain, joules] : {std::pair{"package", package}, std::pair{"dram", dram}}) {
    DomainEnergy row;
    row.source = "rapl_powercap";
    row.domain = domain;
    row.socket = 0;
    row.joules = joules;
    row.watts = joules;
    e.domains.push_back(row);
  }
  return e;
}

/// A tick in which `job` ran `job_ms` and nginx 100 ms, of 2 CPUs.
CpuTick cpu(uint64_t job_ms, std::vector<WorkloadId> ended = {}) {
  CpuTick t;
  if (job_ms > 0) t.workloads.push_back({kJob, job_ms * 1'000'000, 0, 0});
  t.workloads.push_back({kOther, 100'000'000, 0, 0});
  t.capacity_ns = 2'000'000'000;
  t.idle_ns = t.capacity_ns - 100'000'000 - job_ms * 1'000'000;
  t.ended = std::move(ended);
  return t;
}

AttributionOptions options() {
  AttributionOptions o;
  o.idle_watts = {{"package", 10}, {"dram", 1}};
  return o;
}

const AttributionTotals::Workload& totals_of(const AttributionTotals& t, const WorkloadId& id) {
  for (const auto& w : t.workloads)
    if (w.id == id) return w;
  throw std::runtime_error("no such workload");
}

TEST(AttributionJobs, AnEndedWorkloadGivesOneRecordOfItsTotalsAndAnIdleOneNone) {
  Attribution a(options());
  int64_t now = 1'800'000'000'000;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(a.apply(node(50, 5), cpu(500), now += 1000).ended.empty());
  }
  // Idle for a while: not an end.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(a.apply(node(20, 2), cpu(0), now += 1000).ended.empty());
  }
  const AttributionTotals before = a.totals();
  EnergyTick end = a.apply(node(20, 2), cpu(0, {kJob}), now += 1000);
  ASSERT_EQ(end.ended.size(), 1u);
  const EndedWorkload& job = end.ended[0];
  const auto& t = totals_of(before, kJob);
  EXPECT_EQ(job.id, kJob);
  EXPECT_EQ(job.first_seen_ms, 1'800'000'000'000 + 1000 - 1000);  // the first tick's start
  EXPECT_EQ(job.last_seen_ms, 1'800'000'000'000 + 3000);
  EXPECT_EQ(job.ended_ms, now);
  EXPECT_DOUBLE_EQ(job.cpu_seconds, 1.5);
  EXPECT_DOUBLE_EQ(job.host_joules, t.host_joules);
  ASSERT_EQ(job.domains.size(), 2u);
  double sum = 0;
  for (const auto& d : job.domains) {
    EXPECT_DOUBLE_EQ(d.joules, t.joules.at({d.source, d.domain})) << d.domain;
    EXPECT_TRUE(d.measured);
    sum += d.joules;
  }
  EXPECT_GT(job.host_joules, 0);
  EXPECT_DOUBLE_EQ(sum, job.host_joules);  // package + dram is the host sum here
  // Said once: a second word of the same end writes nothing.
  EXPECT_TRUE(a.apply(node(20, 2), cpu(0, {kJob}), now += 1000).ended.empty());
  // Its series stay until the expiry.
  EXPECT_DOUBLE_EQ(totals_of(a.totals(), kJob).cpu_seconds, 1.5);
}

TEST(AttributionJobs, ARunContinuedFromACheckpointEndsOnceWithItsWholeRun) {
  int64_t now = 1'800'000'000'000;
  AttributionTotals saved;
  double before_stop = 0;
  {
    Attribution a(options());
    for (int i = 0; i < 2; ++i) a.apply(node(50, 5), cpu(500), now += 1000);
    saved = a.totals();
    before_stop = totals_of(saved, kJob).host_joules;
    // The agent stops here: a workload still running at stop has not ended.
  }
  Attribution b(options());
  b.restore(saved);
  EnergyTick more = b.apply(node(50, 5), cpu(500), now += 1000);
  EXPECT_TRUE(more.ended.empty());
  EnergyTick end = b.apply(node(20, 2), cpu(0, {kJob}), now += 1000);
  ASSERT_EQ(end.ended.size(), 1u);
  EXPECT_EQ(end.ended[0].first_seen_ms, 1'800'000'000'000);  // from before the restart
  EXPECT_DOUBLE_EQ(end.ended[0].cpu_seconds, 1.5);
  EXPECT_GT(end.ended[0].host_joules, before_stop);

  // Checkpointed after the end and restarted again: the ended run is never recorded twice.
  Attribution c(options());
  c.restore(b.totals());
  EXPECT_TRUE(c.apply(node(20, 2), cpu(0, {kJob}), now += 1000).ended.empty());
  // The same name runs again: its record is of the new run alone.
  c.apply(node(50, 5), cpu(250), now += 1000);
  EnergyTick again = c.apply(node(20, 2), cpu(0, {kJob}), now += 1000);
  ASSERT_EQ(again.ended.size(), 1u);
  EXPECT_DOUBLE_EQ(again.ended[0].cpu_seconds, 0.25);
  EXPECT_EQ(again.ended[0].first_seen_ms, now - 2000);
  EXPECT_LT(again.ended[0].host_joules, end.ended[0].host_joules);
}

TEST(AttributionJobs, AWorkloadNeverTrackedOrExpiredGivesNoRecord) {
  AttributionOptions o = options();
  o.workload_expiry = std::chrono::seconds(2);
  Attribution a(o);
  int64_t now = 1'800'000'000'000;
  a.apply(node(50, 5), cpu(500), now += 1000);
  for (int i = 0; i < 4; ++i) a.apply(node(20, 2), cpu(0), now += 1000);
  // Its series expired: nothing is left to write a record from.
  EXPECT_TRUE(a.apply(node(20, 2), cpu(0, {kJob}), now += 1000).ended.empty());
  EXPECT_TRUE(a.apply(node(20, 2), cpu(0, {{"x.service", "service", "", "", ""}}), now += 1000)
                  .ended.empty());
}

}  // namespace
}  // namespace wattprobe
