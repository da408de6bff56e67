// The nvml source against the fake libnvidia-ml.so.1 (tests/support/fake_nvml), which answers
// with the real C signatures and return codes from the H200 traces in tests/data/nvml. Each TEST
// runs in its own process (one ctest test per TEST), so the fake's environment, read once at
// nvmlInit, is the test's own.

#include "collectors/energy/nvml.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

const std::string kPhased = std::string(WATTPROBE_TEST_DATA) + "/nvml/h200-phased-75-25.jsonl";
const std::string kRandom =
    std::string(WATTPROBE_TEST_DATA) + "/nvml/h200-random-periods-50-30-20.jsonl";

void fake(const std::string& traces, const std::string& faults = "", const std::string& log = "") {
  setenv("WATTPROBE_FAKE_NVML_TRACE", traces.c_str(), 1);
  setenv("WATTPROBE_FAKE_NVML_START", "6", 1);  // inside S1 of the phased trace: both busy
  setenv("WATTPROBE_FAKE_NVML_FAULTS", faults.c_str(), 1);
  setenv("WATTPROBE_FAKE_NVML_LOG", log.c_str(), 1);
  unsetenv("WATTPROBE_FAKE_NVML_PIDS");
}

const Reading* reading(const Sample& s, int socket) {
  for (const Reading& r : s.readings) {
    if (r.domain == "gpu" && r.socket == socket) return &r;
  }
  return nullptr;
}

void wait_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

TEST(Nvml, WithoutTheLibraryTheSourceIsUnavailableAndSaysWhichFile) {
  NvmlSource nvml("/nonexistent/libnvidia-ml.so.1");
  Availability a = nvml.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("/nonexistent/libnvidia-ml.so.1"), std::string::npos) << a.reason;
}

TEST(Nvml, ALibraryWithoutADriverIsUnavailableWithTheReason) {
  fake(kPhased, "nodriver");
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  Availability a = nvml.probe();
  EXPECT_FALSE(a.available);
  EXPECT_NE(a.reason.find("Driver Not Loaded"), std::string::npos) << a.reason;
}

// Each GPU is its own gpu reading (socket = NVML index), an mJ energy counter that restarts
// rather than wraps; the raw value is exactly what the library answered.
TEST(Nvml, EachGpuIsAnEnergyCounterInMillijoulesOfItsOwn) {
  testing::TempTree t;
  const std::string log = (t.root() / "answers").string();
  fake(kPhased + "," + kRandom, "", log);
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  ASSERT_EQ(nvml.devices().size(), 2u);
  EXPECT_EQ(nvml.devices()[0].name, "NVIDIA H200");
  Sample a = nvml.sample();
  wait_s(0.5);
  Sample b = nvml.sample();
  ASSERT_TRUE(b.errors.empty()) << b.errors.front().message();
  for (int gpu : {0, 1}) {
    const Reading* r0 = reading(a, gpu);
    const Reading* r1 = reading(b, gpu);
    ASSERT_TRUE(r0 && r1) << "GPU " << gpu;
    EXPECT_EQ(r1->kind, ReadingKind::energy_counter);
    EXPECT_DOUBLE_EQ(r1->unit_joules, 1e-3);
    EXPECT_TRUE(r1->reset_when_lower);
    EXPECT_GT(r1->raw, r0->raw) << "a busy H200 uses energy in half a second";
  }
  // Both traces come from the same GPU, so the UUIDs repeat: the index keeps the keys apart.
  EXPECT_NE(reading(b, 0)->key, reading(b, 1)->key);
  // The last two answers the fake logged for GPU 0 are the raw values the source returned.
  std::ifstream in(log);
  std::vector<uint64_t> mj;
  std::string word;
  unsigned dev = 0;
  uint64_t value = 0;
  double at = 0;
  while (in >> word >> dev >> value >> at) {
    if (dev == 0) mj.push_back(value);
  }
  ASSERT_GE(mj.size(), 2u);
  EXPECT_EQ(mj[mj.size() - 2], reading(a, 0)->raw);
  EXPECT_EQ(mj.back(), reading(b, 0)->raw);
}

// A pre-Volta GPU has no energy counter: the source reads power, and says energy is integrated.
TEST(Nvml, WithoutAnEnergyCounterPowerIsIntegratedAndSaidSo) {
  fake(kPhased, "energy:not_supported");
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  Sample s = nvml.sample();
  const Reading* r = reading(s, 0);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, ReadingKind::power_gauge);
  EXPECT_GT(r->watts, 50);   // an H200 never draws less, idle or busy
  EXPECT_LT(r->watts, 700);  // its power limit
  EXPECT_FALSE(nvml.devices()[0].energy_counter);
}

// A GPU that falls off the bus stops answering; the other keeps measuring, and the lost one is
// an error of every sample, never a reading.
TEST(Nvml, ALostGpuIsCountedWhileTheOtherKeepsMeasuring) {
  fake(kPhased + "," + kRandom, "lost:1@0.3");
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  ASSERT_NE(reading(nvml.sample(), 1), nullptr);
  wait_s(0.5);
  Sample s = nvml.sample();
  EXPECT_NE(reading(s, 0), nullptr);
  EXPECT_EQ(reading(s, 1), nullptr);
  EXPECT_FALSE(s.errors.empty());
  EXPECT_TRUE(nvml.devices()[1].lost);
  EXPECT_FALSE(nvml.devices()[0].lost);
  Sample again = nvml.sample();
  EXPECT_NE(reading(again, 0), nullptr);
  EXPECT_FALSE(again.errors.empty()) << "the lost GPU is counted every sample";
}

// Under MIG, NVML has no per-process utilisation: the activity says the GPU cannot be split.
TEST(Nvml, MigMakesTheGpuUnsplittableAndSaysWhy) {
  fake(kPhased, "mig:0");
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  (void)nvml.sample();
  ASSERT_EQ(nvml.activity().size(), 1u);
  EXPECT_NE(nvml.activity()[0].unsplittable.find("MIG"), std::string::npos)
      << nvml.activity()[0].unsplittable;
  EXPECT_EQ(nvml.devices()[0].mig, "on");
}

// Absurd answers (utilisation 250 %, power and power limit 2^32-1 mW) are refused, not passed on as
// values.
TEST(Nvml, AbsurdAnswersAreRefused) {
  fake(kPhased, "garbage:0");
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  Sample s = nvml.sample();
  const auto& a = nvml.activity();
  ASSERT_EQ(a.size(), 1u);
  EXPECT_TRUE(a[0].utilisation == -1 || (a[0].utilisation >= 0 && a[0].utilisation <= 1))
      << a[0].utilisation;
  for (const Reading& r : s.readings) {
    if (r.kind == ReadingKind::power_gauge) {
      EXPECT_LT(r.watts, 10'000);
    }
  }
  // A limit of 2^32-1 mW is no limit: refused, said so, and the GPU still measures.
  std::vector<GpuPowerLimit> limits = nvml.power_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_FALSE(limits[0].watts.has_value()) << *limits[0].watts;
  EXPECT_NE(limits[0].why.find("4294967295 mW is out of range"), std::string::npos)
      << limits[0].why;
  EXPECT_NE(reading(s, 0), nullptr);
}

// Each GPU's enforced power limit is its trace's (the H200s were limited to 700 W), per device.
TEST(Nvml, EachGpuStatesItsEnforcedPowerLimit) {
  fake(kPhased + "," + kRandom);
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  (void)nvml.sample();
  std::vector<GpuPowerLimit> limits = nvml.power_limits();
  ASSERT_EQ(limits.size(), 2u);
  for (int gpu : {0, 1}) {
    EXPECT_EQ(limits[gpu].source, "nvml");
    EXPECT_EQ(limits[gpu].device, gpu);
    ASSERT_TRUE(limits[gpu].watts.has_value()) << limits[gpu].why;
    EXPECT_DOUBLE_EQ(*limits[gpu].watts, 700.0);
  }
  std::vector<std::string> doctor = nvml.doctor_report();
  EXPECT_NE(std::find(doctor.begin(), doctor.end(), "  power limit: 700.0 W (enforced)"),
            doctor.end());
}

// A GPU without power management answers NOT_SUPPORTED: no limit, said why, and the source
// measures as before.
TEST(Nvml, AGpuThatStatesNoPowerLimitHasNoneAndStillMeasures) {
  testing::TempTree t;
  std::ifstream in(kPhased);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string field = "\"power_limit_mw\": 700000, ";
  const auto at = text.find(field);
  ASSERT_NE(at, std::string::npos) << "the trace header states the H200's limit";
  text.erase(at, field.size());
  const std::string trace = (t.root() / "no-limit.jsonl").string();
  std::ofstream(trace) << text;
  fake(trace);
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  Sample s = nvml.sample();
  EXPECT_NE(reading(s, 0), nullptr);
  EXPECT_TRUE(s.errors.empty()) << s.errors.front().message();
  std::vector<GpuPowerLimit> limits = nvml.power_limits();
  ASSERT_EQ(limits.size(), 1u);
  EXPECT_FALSE(limits[0].watts.has_value());
  EXPECT_NE(limits[0].why.find("NOT_SUPPORTED"), std::string::npos) << limits[0].why;
}

// The samples name live processes: the running list and samples come from the trace, mapped.
TEST(Nvml, RecordedPidsMapToLiveOnes) {
  fake(kPhased);
  const std::string self = std::to_string(getpid());
  setenv("WATTPROBE_FAKE_NVML_PIDS", ("430=" + self).c_str(), 1);
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  (void)nvml.sample();
  wait_s(1.0);
  (void)nvml.sample();
  const GpuActivity& a = nvml.activity()[0];
  bool running = false;
  for (uint32_t pid : a.running) running = running || pid == static_cast<uint32_t>(getpid());
  EXPECT_TRUE(running) << "recorded pid 430 holds a context in S1, mapped to this process";
  EXPECT_GT(a.utilisation, 0.5) << "both workers are busy in S1";
}

// Accounting mode on: each context holder's share of its life with a kernel running, which names
// the worker the samples never do. In S1 of the phased trace every sample names A (430) while B
// (431) did a quarter of the work; accounting says both, about 3:1.
TEST(Nvml, AccountingModeSeesTheWorkerTheSamplesMiss) {
  fake(kPhased, "accounting:0");
  setenv("WATTPROBE_FAKE_NVML_START", "15", 1);  // 10 s into S1
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  EXPECT_EQ(nvml.devices()[0].accounting, "on");
  (void)nvml.sample();
  wait_s(1.0);
  (void)nvml.sample();
  const GpuActivity& a = nvml.activity()[0];
  for (const GpuProcessSample& s : a.samples) EXPECT_EQ(s.pid, 430u) << "samples name only A";
  std::map<uint32_t, unsigned> util;
  for (const GpuAccountingStat& s : a.accounting) {
    util[s.pid] = s.gpu_util;
    EXPECT_LT(s.start_us, a.accounting_read_us);
  }
  ASSERT_EQ(util.size(), 2u);
  EXPECT_GT(util[431], 0u) << "accounting sees B";
  // ~10 s of work in ~16 s of life: A ~47 %, B ~16 %, each a truncated whole percent.
  EXPECT_NEAR(static_cast<double>(util[430]) / util[431], 3.0, 0.35);
}

TEST(Nvml, WithoutAccountingModeThereAreNoAccountingStats) {
  fake(kPhased);
  NvmlSource nvml(WATTPROBE_FAKE_NVML);
  ASSERT_TRUE(nvml.probe().available);
  (void)nvml.sample();
  EXPECT_EQ(nvml.devices()[0].accounting, "off");
  EXPECT_TRUE(nvml.activity()[0].accounting.empty());
}

}  // namespace
}  // namespace wattprobe
