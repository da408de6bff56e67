#include "agent/state/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>
#include <thread>
#include <tuple>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

using testing::TempTree;
namespace fs = std::filesystem;
using Reason = CheckpointFault::Reason;

const HostIdentity kHere{"0123456789abcdef0123456789abcdef", "here"};

WorkloadId service(std::string name) { return {std::move(name), "service", "", "", ""}; }
WorkloadId pod(std::string ns, std::string p, std::string c) {
  return {ns + "/" + p + "/" + c, "pod", ns, p, c};
}

// A state with one of everything a checkpoint carries, values that are not round numbers.
CheckpointState sample_state() {
  CheckpointState s;
  s.host = kHere;
  s.written_ms = 1'700'000'123'456;
  s.node = {{"rapl_powercap", "package", 0, 123456.789, true},
            {"rapl_powercap", "dram", 0, 2345.5, true},
            {"model", "package", -1, 99.25, false}};
  s.attribution.idle_joules = {{"package", 5000.125}, {"dram", 700.5}};
  s.attribution.unattributed_joules = {{"package", 0.000123}};
  AttributionTotals::Workload web{service("nginx.service"), 812.5, 1'700'000'000'000, {}, {}};
  web.joules[{"rapl_powercap", "package"}] = 40000.75;
  web.joules[{"nvml", "gpu"}] = 5300.25;
  web.gpu_joules[{"nvml", 0, "exclusive"}] = 5000.125;
  web.gpu_joules[{"nvml", 1, "sampled"}] = 300.125;
  web.joules[{"rapl_powercap", "dram"}] = 1200.5;
  AttributionTotals::Workload api{pod("shop", "api-7d9f", "app"), 3.25, 1'700'000'100'000, {}, {}};
  api.joules[{"rapl_powercap", "package"}] = 77.5;
  s.attribution.workloads = {web, api};
  s.carbon.workloads[web.id] = {5.5, 0.25};
  s.carbon.workloads[api.id] = {0.0125, 0.002};
  s.carbon.workloads[service("gone.service")] = {1.5, 0.5};  // expired from attribution
  s.carbon.idle = {0.75, 3.5};
  s.carbon.unattributed_operational = 0.000015;
  Carbon::BudgetState day;
  day.budget = {"nginx.service", "", 500, CarbonBudget::Window::day};
  day.day_grams[19700 % 30] = 42.5;
  day.last_day = 19700;
  Carbon::BudgetState month;
  month.budget = {"", "pod", 20000, CarbonBudget::Window::days30};
  for (std::size_t i = 0; i < month.day_grams.size(); ++i) month.day_grams[i] = 1.5 * i;
  month.last_day = 19700;
  s.budgets = {day, month};
  s.series_starts = {{"wattprobe_node_energy_joules_total",
                      {{"domain", "package"}, {"socket", "0"}, {"source", "rapl_powercap"}},
                      1'600'000'000'000},
                     {"wattprobe_workload_cpu_seconds_total",
                      {{"kind", "service"}, {"workload", "nginx.service"}},
                      1'650'000'000'000}};
  return s;
}

std::vector<EnergyMeter::Total> sorted(std::vector<EnergyMeter::Total> rows) {
  std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) {
    return std::tie(x.source, x.domain, x.socket) < std::tie(y.source, y.domain, y.socket);
  });
  return rows;
}

void expect_same(CheckpointState a, CheckpointState b) {
  EXPECT_EQ(a.host, b.host);
  EXPECT_EQ(a.written_ms, b.written_ms);
  a.node = sorted(a.node);
  b.node = sorted(b.node);
  ASSERT_EQ(a.node.size(), b.node.size());
  for (std::size_t i = 0; i < a.node.size(); ++i) {
    EXPECT_EQ(a.node[i].source, b.node[i].source);
    EXPECT_EQ(a.node[i].domain, b.node[i].domain);
    EXPECT_EQ(a.node[i].socket, b.node[i].socket);
    EXPECT_EQ(a.node[i].joules, b.node[i].joules);  // bit-exact: a total continues exactly
    EXPECT_EQ(a.node[i].measured, b.node[i].measured);
  }
  EXPECT_EQ(a.attribution.idle_joules, b.attribution.idle_joules);
  EXPECT_EQ(a.attribution.unattributed_joules, b.attribution.unattributed_joules);
  ASSERT_EQ(a.attribution.workloads.size(), b.attribution.workloads.size());
  for (const auto& w : a.attribution.workloads) {
    auto it = std::find_if(b.attribution.workloads.begin(), b.attribution.workloads.end(),
                           [&](const auto& x) { return x.id == w.id; });
    ASSERT_NE(it, b.attribution.workloads.end()) << w.id.workload;
    EXPECT_EQ(it->cpu_seconds, w.cpu_seconds);
    EXPECT_EQ(it->last_seen_ms, w.last_seen_ms);
    EXPECT_EQ(it->joules, w.joules);
    EXPECT_EQ(it->gpu_joules, w.gpu_joules);
  }
  ASSERT_EQ(a.carbon.workloads.size(), b.carbon.workloads.size());
  for (const auto& [id, g] : a.carbon.workloads) {
    ASSERT_TRUE(b.carbon.workloads.count(id)) << id.workload;
    EXPECT_EQ(b.carbon.workloads.at(id).operational, g.operational);
    EXPECT_EQ(b.carbon.workloads.at(id).embodied, g.embodied);
  }
  EXPECT_EQ(a.carbon.idle.operational, b.carbon.idle.operational);
  EXPECT_EQ(a.carbon.idle.embodied, b.carbon.idle.embodied);
  EXPECT_EQ(a.carbon.unattributed_operational, b.carbon.unattributed_operational);
  // Start times come back with the labels checkpoint_families gives a total: compared by series.
  auto starts = [](const std::vector<SeriesStart>& v) {
    std::map<std::string, int64_t> out;
    for (const auto& st : v) out[SeriesStarts::key(st.family, st.labels)] = st.start_ms;
    return out;
  };
  EXPECT_EQ(starts(a.series_starts), starts(b.series_starts));
  ASSERT_EQ(a.budgets.size(), b.budgets.size());
  for (std::size_t i = 0; i < a.budgets.size(); ++i) {
    EXPECT_EQ(a.budgets[i].budget.workload, b.budgets[i].budget.workload);
    EXPECT_EQ(a.budgets[i].budget.kind, b.budgets[i].budget.kind);
    EXPECT_EQ(a.budgets[i].budget.window, b.budgets[i].budget.window);
    EXPECT_EQ(a.budgets[i].day_grams, b.budgets[i].day_grams);
    EXPECT_EQ(a.budgets[i].last_day, b.budgets[i].last_day);
  }
}

const CheckpointFault* fault_of(const std::variant<CheckpointState, CheckpointFault>& d) {
  return std::get_if<CheckpointFault>(&d);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<fs::path> files_starting(const fs::path& dir, std::string_view prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(prefix)) out.push_back(e.path());
  }
  return out;
}

// A frame around `payload` with a right checksum, as a newer wattprobe would write it.
std::string reframe(const std::string& file, uint32_t version) {
  std::string payload = file.substr(20);
  std::string out = "WPCK";
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((version >> (8 * i)) & 0xff));
  for (int i = 0; i < 8; ++i) {
    out.push_back(static_cast<char>((uint64_t{payload.size()} >> (8 * i)) & 0xff));
  }
  std::string covered = out.substr(4, 12) + payload;
  uint32_t crc = 0xffffffffu;  // CRC-32 (IEEE, reflected), as zlib computes it
  for (unsigned char ch : covered) {
    crc ^= ch;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  crc ^= 0xffffffffu;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out + payload;
}

TEST(Checkpoint, EncodeDecodeKeepsEveryTotalExactly) {
  CheckpointState s = sample_state();
  auto decoded = decode_checkpoint(encode_checkpoint(s));
  ASSERT_FALSE(fault_of(decoded)) << fault_of(decoded)->detail;
  expect_same(s, std::get<CheckpointState>(decoded));
}

TEST(Checkpoint, StoreWritesAndLoadsTheSameTotals) {
  TempTree dir;
  CheckpointStore store(dir.root(), kHere);
  CheckpointState s = sample_state();
  ASSERT_TRUE(store.write(encode_checkpoint(s))) << "write";
  auto loaded = store.load();
  ASSERT_TRUE(loaded.state);
  EXPECT_EQ(loaded.file, dir.root() / "checkpoint.pb");
  expect_same(s, *loaded.state);
  EXPECT_TRUE(store.errors().empty());
  EXPECT_FALSE(fs::exists(dir.root() / "checkpoint.pb.tmp"));
}

TEST(Checkpoint, EachWriteKeepsThePreviousOneAsPrev) {
  TempTree dir;
  CheckpointStore store(dir.root(), kHere);
  CheckpointState first = sample_state();
  CheckpointState second = sample_state();
  second.written_ms += 30000;
  second.node[0].joules += 3000;
  ASSERT_TRUE(store.write(encode_checkpoint(first)));
  EXPECT_FALSE(fs::exists(store.previous()));
  ASSERT_TRUE(store.write(encode_checkpoint(second)));
  EXPECT_EQ(read_file(store.current()), encode_checkpoint(second));
  EXPECT_EQ(read_file(store.previous()), encode_checkpoint(first));
}

TEST(Checkpoint, RestoreThroughTheRealPartsContinuesTheirTotals) {
  TempTree host;
  CheckpointState s = sample_state();
  CarbonOptions o;
  o.budgets = {*parse_budget("nginx.service=500/day"), *parse_budget("kind:pod=20000/30d"),
               *parse_budget("new.service=10/day")};
  Carbon carbon(host.paths(), o, std::make_unique<StaticGridProvider>(475, ""));
  EnergyMeter meter({});
  Attribution attribution({});
  restore_totals(s, meter, attribution, &carbon);
  CheckpointState back = capture_totals(meter, attribution, &carbon);
  back.host = s.host;
  back.series_starts = s.series_starts;  // start times go through SeriesStarts, not the parts
  back.written_ms = s.written_ms;
  // The budget configured since the checkpoint starts empty; the others continue.
  ASSERT_EQ(back.budgets.size(), 3u);
  EXPECT_EQ(back.budgets[2].last_day, -1);
  back.budgets.pop_back();
  expect_same(s, back);
}

TEST(Checkpoint, EmptyFileIsReportedAsEmpty) {
  auto d = decode_checkpoint("");
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::empty);
}

TEST(Checkpoint, EveryTruncationIsDetected) {
  std::string file = encode_checkpoint(sample_state());
  // Every length short of the whole file: inside the header, and inside the payload.
  for (std::size_t n = 1; n < file.size(); ++n) {
    auto d = decode_checkpoint(std::string_view(file).substr(0, n));
    ASSERT_TRUE(fault_of(d)) << "accepted the first " << n << " of " << file.size() << " bytes";
    EXPECT_EQ(fault_of(d)->reason, Reason::truncated) << n << ": " << fault_of(d)->detail;
  }
}

TEST(Checkpoint, EveryFlippedBitIsDetected) {
  std::string file = encode_checkpoint(sample_state());
  for (std::size_t byte = 0; byte < file.size(); ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = file;
      bad[byte] = static_cast<char>(bad[byte] ^ (1 << bit));
      auto d = decode_checkpoint(bad);
      ASSERT_TRUE(fault_of(d)) << "accepted a flip of bit " << bit << " of byte " << byte;
      // A flip in the version field reads as damage, never as a newer format that stops start.
      EXPECT_NE(fault_of(d)->reason, Reason::newer_format) << byte << "/" << bit;
    }
  }
}

TEST(Checkpoint, NotACheckpointIsBadMagic) {
  auto d = decode_checkpoint("{\"node\": []}\n and some more bytes to pass the header size");
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::bad_magic);
}

TEST(Checkpoint, TrailingBytesAreMalformed) {
  auto d = decode_checkpoint(encode_checkpoint(sample_state()) + "x");
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::malformed);
}

TEST(Checkpoint, ValuesOutOfRangeAreRefusedNamingTheField) {
  CheckpointState s = sample_state();
  s.attribution.workloads[1].joules[{"rapl_powercap", "package"}] = -1;
  auto d = decode_checkpoint(encode_checkpoint(s));
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::malformed);
  EXPECT_NE(fault_of(d)->detail.find("workloads[1].attributed.joules[0]"), std::string::npos)
      << fault_of(d)->detail;

  s = sample_state();
  s.node[1].joules = std::nan("");
  d = decode_checkpoint(encode_checkpoint(s));
  ASSERT_TRUE(fault_of(d));
  EXPECT_NE(fault_of(d)->detail.find("node[1].joules"), std::string::npos) << fault_of(d)->detail;
}

TEST(Checkpoint, AFutureFormatVersionIsNewerFormatNotCorrupt) {
  std::string file = reframe(encode_checkpoint(sample_state()), kCheckpointFormatVersion + 1);
  auto d = decode_checkpoint(file);
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::newer_format) << fault_of(d)->detail;
  // The same frame with this version decodes: the test's framing is the real one.
  EXPECT_FALSE(fault_of(decode_checkpoint(reframe(file, kCheckpointFormatVersion))));
}

TEST(Checkpoint, AFormatOneFileIsStillReadWithoutStartTimes) {
  // Format 1 is format 2 without series_starts: the same payload, its version field (1, a
  // varint, the payload's first bytes 0x08 0x02) saying 1, in a frame saying 1.
  CheckpointState s = sample_state();
  s.series_starts.clear();
  std::string file = encode_checkpoint(s);
  ASSERT_EQ(file.substr(20, 2), std::string("\x08\x02", 2));
  file[21] = 0x01;
  auto d = decode_checkpoint(reframe(file, 1));
  ASSERT_FALSE(fault_of(d)) << fault_of(d)->detail;
  const auto& state = std::get<CheckpointState>(d);
  expect_same(s, state);
  EXPECT_EQ(state.format_version, 1u);
  EXPECT_TRUE(state.series_starts.empty());
}

TEST(Checkpoint, FormatTwoKeepsTheStartTimeOfEachTotal) {
  auto d = decode_checkpoint(encode_checkpoint(sample_state()));
  ASSERT_FALSE(fault_of(d)) << fault_of(d)->detail;
  const auto& state = std::get<CheckpointState>(d);
  EXPECT_EQ(state.format_version, 2u);
  ASSERT_EQ(state.series_starts.size(), 2u);
  EXPECT_EQ(state.series_starts[1].start_ms, 1'650'000'000'000);
}

TEST(Checkpoint, AStartTimeAfterTheFileWasWrittenIsMalformed) {
  CheckpointState s = sample_state();
  s.series_starts[0].start_ms = s.written_ms + 1;
  auto d = decode_checkpoint(encode_checkpoint(s));
  ASSERT_TRUE(fault_of(d));
  EXPECT_EQ(fault_of(d)->reason, Reason::malformed);
  EXPECT_NE(fault_of(d)->detail.find("wattprobe_node_energy_joules_total starts at"),
            std::string::npos)
      << fault_of(d)->detail;
}

TEST(Checkpoint, OnlyTheTotalsTheCheckpointContinuesKeepTheirStart) {
  CheckpointState s = sample_state();
  // The agent's own counters restart from zero with it: their start must not be kept.
  s.series_starts.push_back({"wattprobe_agent_otlp_samples_sent_total", {}, 1'690'000'000'000});
  // Label order and empty labels (namespace, pod, container) do not matter.
  s.series_starts.push_back({"wattprobe_workload_operational_co2e_grams_total",
                             {{"workload", "gone.service"}, {"kind", "service"}, {"pod", ""}},
                             1'680'000'000'000});
  auto d = decode_checkpoint(encode_checkpoint(s));
  ASSERT_FALSE(fault_of(d)) << fault_of(d)->detail;
  const auto& kept = std::get<CheckpointState>(d).series_starts;
  ASSERT_EQ(kept.size(), 3u);
  for (const auto& k : kept) EXPECT_NE(k.family, "wattprobe_agent_otlp_samples_sent_total");
  SeriesStarts restored;
  restored.restore(kept);
  EXPECT_EQ(restored.start_ms("wattprobe_workload_operational_co2e_grams_total",
                              {{"kind", "service"}, {"workload", "gone.service"}}),
            1'680'000'000'000);
}

TEST(Checkpoint, TotalsWithoutAKnownStartCostAByteEach) {
  CheckpointState s = sample_state();
  s.series_starts.clear();
  const std::size_t without = encode_checkpoint(s).size();
  for (const Family& f : checkpoint_families(s))
    for (const Series& series : f.series)
      s.series_starts.push_back({f.name, series.labels, 1'650'000'000'000});
  const std::size_t with = encode_checkpoint(s).size();
  // One varint per total (the first start in full), the CRC and the field keys.
  EXPECT_LE(with - without, s.series_starts.size() * 2 + 16);
}

TEST(Checkpoint, ANewerCheckpointRefusesStartAndIsLeftInPlace) {
  TempTree dir;
  CheckpointStore store(dir.root(), kHere);
  std::string newer = reframe(encode_checkpoint(sample_state()), kCheckpointFormatVersion + 1);
  write_file(store.current(), newer);
  ASSERT_TRUE(store.write(encode_checkpoint(sample_state())));  // the newer one becomes .prev
  // Now .prev is the newer one and the current is ours: a good current is used...
  EXPECT_TRUE(store.load().state);
  // ...but with a corrupt current, falling back lands on the newer file: refuse, touch nothing.
  write_file(store.current(), "garbage");
  auto loaded = store.load();
  EXPECT_FALSE(loaded.state);
  ASSERT_TRUE(loaded.refusal);
  EXPECT_NE(loaded.refusal->find("format version " + std::to_string(kCheckpointFormatVersion + 1)),
            std::string::npos)
      << *loaded.refusal;
  EXPECT_NE(loaded.refusal->find(store.previous().string()), std::string::npos);
  EXPECT_EQ(read_file(store.previous()), newer);
}

TEST(Checkpoint, CorruptCurrentIsKeptAsideAndThePreviousGoodOneUsed) {
  for (std::string how : {"truncated", "bit-flipped", "empty"}) {
    SCOPED_TRACE(how);
    TempTree dir;
    CheckpointStore store(dir.root(), kHere);
    CheckpointState older = sample_state();
    CheckpointState newer = sample_state();
    newer.node[0].joules += 10;
    ASSERT_TRUE(store.write(encode_checkpoint(older)));
    ASSERT_TRUE(store.write(encode_checkpoint(newer)));
    std::string bad = read_file(store.current());
    if (how == "truncated") bad.resize(bad.size() / 2);
    if (how == "bit-flipped") bad[bad.size() - 7] ^= 0x10;
    if (how == "empty") bad.clear();
    write_file(store.current(), bad);

    auto loaded = store.load();
    std::string log = join_lines(loaded.log);

    ASSERT_TRUE(loaded.state);
    EXPECT_EQ(loaded.file, store.previous());
    expect_same(older, *loaded.state);
    Reason want = how == "truncated" ? Reason::truncated
                  : how == "empty"   ? Reason::empty
                                     : Reason::checksum;
    EXPECT_EQ(store.errors().at(want), 1u);
    EXPECT_NE(log.find(store.current().string()), std::string::npos) << log;
    EXPECT_NE(log.find(std::string(to_string(want))), std::string::npos) << log;
    auto aside = files_starting(dir.root(), "checkpoint.pb.corrupt-");
    ASSERT_EQ(aside.size(), 1u);
    EXPECT_EQ(read_file(aside[0]), bad);  // kept byte for byte for inspection
    EXPECT_FALSE(fs::exists(store.current()));
  }
}

TEST(Checkpoint, BothCorruptStartsFromZeroAndKeepsBoth) {
  TempTree dir;
  CheckpointStore store(dir.root(), kHere);
  write_file(store.current(), "WPCK");
  write_file(store.previous(), "");
  auto loaded = store.load();
  EXPECT_EQ(loaded.log.size(), 4u) << join_lines(loaded.log);  // each unusable, each set aside
  EXPECT_FALSE(loaded.state);
  EXPECT_FALSE(loaded.refusal);
  EXPECT_EQ(files_starting(dir.root(), "checkpoint.pb.corrupt-").size(), 1u);
  EXPECT_EQ(files_starting(dir.root(), "checkpoint.pb.prev.corrupt-").size(), 1u);
}

TEST(Checkpoint, CrashBetweenTheRenamesLeavesPrevWhichIsUsed) {
  TempTree dir;
  CheckpointStore store(dir.root(), kHere);
  ASSERT_TRUE(store.write(encode_checkpoint(sample_state())));
  ASSERT_TRUE(store.write(encode_checkpoint(sample_state())));
  fs::remove(store.current());  // renamed to .prev, the new one not yet in place
  auto loaded = store.load();
  ASSERT_TRUE(loaded.state);
  EXPECT_EQ(loaded.file, store.previous());
  EXPECT_TRUE(store.errors().empty());
}

TEST(Checkpoint, AnotherMachinesCheckpointIsSetAsideNotRestored) {
  TempTree dir;
  CheckpointState theirs = sample_state();
  theirs.host = {"fedcba9876543210fedcba9876543210", "here"};  // a clone keeps the host name
  ASSERT_TRUE(CheckpointStore(dir.root(), theirs.host).write(encode_checkpoint(theirs)));
  CheckpointStore store(dir.root(), kHere);
  auto loaded = store.load();
  std::string log = join_lines(loaded.log);
  EXPECT_FALSE(loaded.state);
  EXPECT_FALSE(loaded.refusal);
  EXPECT_EQ(store.errors().at(Reason::foreign_host), 1u);
  EXPECT_NE(log.find("fedcba9876543210fedcba9876543210"), std::string::npos) << log;
  EXPECT_EQ(files_starting(dir.root(), "checkpoint.pb.foreign-").size(), 1u);
}

TEST(Checkpoint, TheMachineIdDecidesWhereBothHaveOne) {
  EXPECT_TRUE(same_host(kHere, {kHere.machine_id, "renamed"}));
  EXPECT_FALSE(same_host(kHere, {"fedcba9876543210fedcba9876543210", kHere.hostname}));
  EXPECT_TRUE(same_host({"", "box"}, {kHere.machine_id, "box"}));
  EXPECT_FALSE(same_host({"", "box"}, {"", "other"}));
}

TEST(Checkpoint, HostIdentityReadsMachineIdUnderTheProcfsRoot) {
  TempTree t;
  t.write("etc/machine-id", "0123456789abcdef0123456789abcdef\n");
  HostIdentity h = read_host_identity(t.paths());
  EXPECT_EQ(h.machine_id, "0123456789abcdef0123456789abcdef");
  EXPECT_FALSE(h.hostname.empty());
  t.write("etc/machine-id", "uninitialized\n");
  EXPECT_EQ(read_host_identity(t.paths()).machine_id, "");
  t.remove("etc/machine-id");
  EXPECT_EQ(read_host_identity(t.paths()).machine_id, "");
}

double series_value(const Snapshot& snap, std::string_view family, std::string_view reason) {
  const Family* f = snap.find(family);
  if (!f) return -1;
  for (const auto& s : f->series) {
    if (reason.empty() || (!s.labels.empty() && s.labels[0].second == reason)) return s.value;
  }
  return -1;
}

TEST(Checkpoint, AnUnwritableFolderIsCountedNamedAndExported) {
  TempTree t;
  t.write("not-a-folder", "x");
  CheckpointKeeper checkpoint(CheckpointStore(t.path("not-a-folder/state"), kHere),
                              std::chrono::milliseconds(100));
  auto restored = checkpoint.restore();
  ASSERT_TRUE(restored.ok());
  EXPECT_FALSE(restored->state);
  std::string log = join_lines(restored->log);
  EXPECT_NE(log.find("not-a-folder/state"), std::string::npos) << log;
  EXPECT_NE(log.find("checkpoints will fail"), std::string::npos) << log;
  auto first = checkpoint.write(sample_state());
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message().find("not-a-folder/state"), std::string::npos)
      << first.error().message();
  EXPECT_FALSE(checkpoint.due()) << "a failed write waits for the next interval like a good one";
  std::this_thread::sleep_for(std::chrono::milliseconds(120));
  EXPECT_TRUE(checkpoint.due());
  EXPECT_FALSE(checkpoint.write(sample_state()).ok());
  Snapshot snap;
  checkpoint.append_families(snap.families);
  EXPECT_EQ(series_value(snap, "wattprobe_agent_checkpoint_errors_total", "write"), 2);
  EXPECT_EQ(series_value(snap, "wattprobe_agent_checkpoint_last_success_timestamp_seconds", ""), 0);
}

TEST(Checkpoint, AFolderTheAgentsUserCannotWriteIsAnError) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a folder nobody cannot write";
  TempTree t;
  t.chmod("", fs::perms(0755));  // nobody may enter, not write
  // Root ignores file modes: the write is tried by a child that drops to nobody.
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(10);
    CheckpointStore store(t.root(), kHere);
    auto r = store.write(encode_checkpoint(sample_state()));
    if (r) _exit(11);
    if (r.error().kind != ErrorKind::permission) _exit(12);
    _exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setresuid, 11 written, 12 not a permission error";
}

TEST(Checkpoint, KeeperIsDueAtTheFirstTickThenEveryInterval) {
  TempTree t;
  EnergyMeter meter({});
  meter.restore_total("rapl_powercap", "package", 0, 10);
  Attribution attribution({});
  CheckpointKeeper checkpoint(CheckpointStore(t.root(), kHere), std::chrono::hours(1));
  ASSERT_TRUE(checkpoint.due());
  ASSERT_TRUE(checkpoint.write(capture_totals(meter, attribution, nullptr)).ok());
  ASSERT_TRUE(fs::exists(t.root() / "checkpoint.pb"));
  meter.restore_total("rapl_powercap", "package", 0, 20);
  EXPECT_FALSE(checkpoint.due());  // not for an hour: the file keeps the first totals
  auto loaded = CheckpointStore(t.root(), kHere).load();
  ASSERT_TRUE(loaded.state);
  EXPECT_EQ(loaded.state->node.at(0).joules, 10);
  ASSERT_TRUE(checkpoint.write(capture_totals(meter, attribution, nullptr)).ok());  // as at stop
  loaded = CheckpointStore(t.root(), kHere).load();
  EXPECT_EQ(loaded.state->node.at(0).joules, 20);
  std::vector<Family> fams;
  checkpoint.append_families(fams);
  Snapshot snap;
  snap.families = fams;
  EXPECT_GT(series_value(snap, "wattprobe_agent_checkpoint_last_success_timestamp_seconds", ""),
            1e9);
  EXPECT_EQ(series_value(snap, "wattprobe_agent_checkpoint_bytes", ""),
            static_cast<double>(fs::file_size(t.root() / "checkpoint.pb")));
}

}  // namespace
}  // namespace wattprobe

namespace wattprobe {
namespace {

// Job records (issue 29): a run's first tick and whether it ended survive the checkpoint, so a
// job running across a restart is continued and an ended one never recorded twice.
TEST(CheckpointJobs, ARunsFirstTickAndEndSurviveTheFile) {
  CheckpointState s = sample_state();
  ASSERT_GE(s.attribution.workloads.size(), 1u);
  s.attribution.workloads[0].first_seen_ms = 1'700'000'000'250;
  s.attribution.workloads[0].ended = true;
  auto decoded = decode_checkpoint(encode_checkpoint(s));
  ASSERT_FALSE(std::get_if<CheckpointFault>(&decoded));
  const auto& back = std::get<CheckpointState>(decoded).attribution.workloads;
  bool found = false;
  for (const auto& w : back) {
    if (w.id != s.attribution.workloads[0].id) continue;
    found = true;
    EXPECT_EQ(w.first_seen_ms, 1'700'000'000'250);
    EXPECT_TRUE(w.ended);
  }
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace wattprobe
