#include "agent/state/checkpoint.h"

#include <fcntl.h>
#include <google/protobuf/arena.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <set>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"
#include "agent/state/checkpoint.pb.h"

namespace wattprobe {
namespace {

namespace pb = wattprobe::checkpoint;
using Reason = CheckpointFault::Reason;

constexpr char kMagic[4] = {'W', 'P', 'C', 'K'};
constexpr std::size_t kHeaderBytes = 20;  // magic 4, version 4, length 8, crc 4
// Far above 10,000 workloads (about 2 MB): a length beyond it is a damaged frame, and reading
// it must not allocate whatever a flipped bit asks for.
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 30;

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[at + i])) << (8 * i);
  }
  return v;
}

// Over version, length and payload: a flipped bit in the version must read as damage, not as
// "written by a newer wattprobe" (which would stop the agent).
uint32_t frame_crc(std::string_view version_and_length, std::string_view payload) {
  uLong c = crc32(0L, Z_NULL, 0);
  c = crc32_z(c, reinterpret_cast<const Bytef*>(version_and_length.data()),
              version_and_length.size());
  c = crc32_z(c, reinterpret_cast<const Bytef*>(payload.data()), payload.size());
  return static_cast<uint32_t>(c);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

bool amount(double v) { return std::isfinite(v) && v >= 0; }

CheckpointFault fault(Reason r, std::string detail) { return {r, std::move(detail)}; }

std::string_view window_name(CarbonBudget::Window w) {
  return w == CarbonBudget::Window::day ? "day" : "30d";
}

// Every total a checkpoint holds, as the series it continues, in the order of their keys: the
// order the start times are written in, the same for the writer and the reader whatever order
// their containers hold the totals in.
struct TotalSeries {
  std::string key;
  std::string family;
  Labels labels;
};
std::vector<TotalSeries> sorted_totals(const CheckpointState& s) {
  std::vector<TotalSeries> out;
  for (Family& f : checkpoint_families(s)) {
    for (Series& series : f.series) {
      out.push_back({SeriesStarts::key(f.name, series.labels), f.name, std::move(series.labels)});
    }
  }
  std::sort(out.begin(), out.end(),
            [](const TotalSeries& a, const TotalSeries& b) { return a.key < b.key; });
  return out;
}

uint32_t totals_crc(const std::vector<TotalSeries>& totals) {
  uLong c = crc32_z(0L, Z_NULL, 0);
  for (const auto& t : totals) {
    c = crc32_z(c, reinterpret_cast<const Bytef*>(t.key.data()), t.key.size() + 1);  // and NUL
  }
  return static_cast<uint32_t>(c);
}

std::string describe(const HostIdentity& h) {
  std::string s = "host \"" + h.hostname + "\"";
  s += h.machine_id.empty() ? " (no machine id)" : " (machine id " + h.machine_id + ")";
  return s;
}

// Fills `out` from a message whose checksum was right; every field is checked, so a file that
// passes is restored whole and one that fails is not restored at all.
std::optional<CheckpointFault> from_message(const pb::Checkpoint& m, CheckpointState& out) {
  auto bad = [](std::string field, std::string what) {
    return fault(Reason::malformed, std::move(field) + ": " + std::move(what));
  };
  auto bad_amount = [&](std::string field, double v) {
    return bad(std::move(field), num(v) + " is not a finite amount >= 0");
  };
  out.host = {m.host().machine_id(), m.host().hostname()};
  if (out.host.machine_id.empty() && out.host.hostname.empty()) {
    return bad("host", "neither a machine id nor a host name");
  }
  if (!out.host.machine_id.empty() && !valid_machine_id(out.host.machine_id)) {
    return bad("host.machine_id", quote_for_error(out.host.machine_id) + " is not 32 hex digits");
  }
  if (m.written_unix_ms() <= 0) return bad("written_unix_ms", std::to_string(m.written_unix_ms()));
  out.written_ms = m.written_unix_ms();

  std::set<std::tuple<std::string, std::string, int>> rows;
  for (int i = 0; i < m.node_size(); ++i) {
    const auto& n = m.node(i);
    std::string f = "node[" + std::to_string(i) + "]";
    if (n.source().empty() || n.domain().empty()) return bad(f, "source or domain is empty");
    if (n.socket() < -1) return bad(f + ".socket", std::to_string(n.socket()));
    if (!amount(n.joules())) return bad_amount(f + ".joules", n.joules());
    if (!rows.insert({n.source(), n.domain(), n.socket()}).second) {
      return bad(f, n.source() + "/" + n.domain() + "/" + std::to_string(n.socket()) + " twice");
    }
    out.node.push_back({n.source(), n.domain(), n.socket(), n.joules(), n.measured()});
  }
  auto by_domain = [&](const google::protobuf::Map<std::string, double>& in, const std::string& f,
                       std::map<std::string, double>& target) -> std::optional<CheckpointFault> {
    for (const auto& [domain, j] : in) {
      if (domain.empty()) return bad(f, "empty domain");
      if (!amount(j)) return bad_amount(f + "[" + domain + "]", j);
      target[domain] = j;
    }
    return std::nullopt;
  };
  if (auto f = by_domain(m.idle_joules(), "idle_joules", out.attribution.idle_joules)) return f;
  if (auto f = by_domain(m.unattributed_joules(), "unattributed_joules",
                         out.attribution.unattributed_joules)) {
    return f;
  }

  std::unordered_map<WorkloadId, int, WorkloadIdHash> seen;
  for (int i = 0; i < m.workloads_size(); ++i) {
    const auto& w = m.workloads(i);
    std::string f = "workloads[" + std::to_string(i) + "]";
    WorkloadId id{w.workload(), w.kind(), w.namespace_(), w.pod(), w.container()};
    if (id.kind.empty()) return bad(f + ".kind", "empty");
    if (auto [it, fresh] = seen.try_emplace(id, i); !fresh) {
      return bad(f, "the same workload as workloads[" + std::to_string(it->second) + "]");
    }
    if (!w.has_attributed() && !w.has_carbon()) return bad(f, "neither energy nor carbon");
    if (w.has_attributed()) {
      const auto& a = w.attributed();
      AttributionTotals::Workload t;
      t.id = id;
      if (!amount(a.cpu_seconds()))
        return bad_amount(f + ".attributed.cpu_seconds", a.cpu_seconds());
      t.cpu_seconds = a.cpu_seconds();
      t.last_seen_ms = a.last_seen_unix_ms();
      if (!amount(a.host_joules()))
        return bad_amount(f + ".attributed.host_joules", a.host_joules());
      t.host_joules = a.host_joules();
      if (a.first_seen_unix_ms() < 0) {
        return bad(f + ".attributed.first_seen_unix_ms", std::to_string(a.first_seen_unix_ms()));
      }
      t.first_seen_ms = a.first_seen_unix_ms();
      t.ended = a.ended();
      for (int k = 0; k < a.joules_size(); ++k) {
        const auto& j = a.joules(k);
        std::string g = f + ".attributed.joules[" + std::to_string(k) + "]";
        if (j.source().empty() || j.domain().empty()) return bad(g, "source or domain is empty");
        if (!amount(j.joules())) return bad_amount(g, j.joules());
        if (!t.joules.emplace(std::pair{j.source(), j.domain()}, j.joules()).second) {
          return bad(g, j.source() + "/" + j.domain() + " twice");
        }
      }
      for (int k = 0; k < a.gpu_size(); ++k) {
        const auto& j = a.gpu(k);
        std::string g = f + ".attributed.gpu[" + std::to_string(k) + "]";
        if (j.source().empty() || j.split().empty()) return bad(g, "source or split is empty");
        if (j.device() < 0) return bad(g, "device " + std::to_string(j.device()));
        if (!amount(j.joules())) return bad_amount(g, j.joules());
        if (!t.gpu_joules.emplace(std::tuple{j.source(), j.device(), j.split()}, j.joules())
                 .second) {
          return bad(g, j.source() + "/" + std::to_string(j.device()) + "/" + j.split() + " twice");
        }
      }
      out.attribution.workloads.push_back(std::move(t));
    }
    if (w.has_carbon()) {
      const auto& c = w.carbon();
      if (!amount(c.operational())) return bad_amount(f + ".carbon.operational", c.operational());
      if (!amount(c.embodied())) return bad_amount(f + ".carbon.embodied", c.embodied());
      if (!amount(c.cfe_joules())) return bad_amount(f + ".carbon.cfe_joules", c.cfe_joules());
      out.carbon.workloads[id] = {c.operational(), c.embodied(), c.cfe_joules()};
      int64_t seen = w.carbon_last_seen_unix_ms();
      if (seen < 0) return bad(f + ".carbon_last_seen_unix_ms", std::to_string(seen));
      if (seen == 0) seen = w.has_attributed() ? w.attributed().last_seen_unix_ms() : 0;
      out.carbon.last_seen_ms[id] = seen > 0 ? seen : out.written_ms;
    }
  }
  if (!amount(m.idle_carbon().operational()) || !amount(m.idle_carbon().embodied())) {
    return bad("idle_carbon",
               num(m.idle_carbon().operational()) + " / " + num(m.idle_carbon().embodied()) + " g");
  }
  if (!amount(m.idle_carbon().cfe_joules())) {
    return bad_amount("idle_carbon.cfe_joules", m.idle_carbon().cfe_joules());
  }
  out.carbon.idle = {m.idle_carbon().operational(), m.idle_carbon().embodied(),
                     m.idle_carbon().cfe_joules()};
  if (!amount(m.unattributed_operational_grams())) {
    return bad_amount("unattributed_operational_grams", m.unattributed_operational_grams());
  }
  out.carbon.unattributed_operational = m.unattributed_operational_grams();
  if (!amount(m.unattributed_cfe_joules())) {
    return bad_amount("unattributed_cfe_joules", m.unattributed_cfe_joules());
  }
  out.carbon.unattributed_cfe_joules = m.unattributed_cfe_joules();
  if (!amount(m.platform_shortfall_joules())) {
    return bad_amount("platform_shortfall_joules", m.platform_shortfall_joules());
  }
  out.attribution.platform_shortfall_joules = m.platform_shortfall_joules();
  if (!amount(m.host_joules())) return bad_amount("host_joules", m.host_joules());
  out.attribution.host_joules = m.host_joules();

  for (int i = 0; i < m.budgets_size(); ++i) {
    const auto& b = m.budgets(i);
    std::string f = "budgets[" + std::to_string(i) + "]";
    Carbon::BudgetState s;
    s.budget.workload = b.workload();
    s.budget.kind = b.kind();
    if (s.budget.workload.empty() == s.budget.kind.empty()) {
      return bad(f, "needs exactly one of workload and kind");
    }
    if (b.window() == "day") {
      s.budget.window = CarbonBudget::Window::day;
    } else if (b.window() == "30d") {
      s.budget.window = CarbonBudget::Window::days30;
    } else {
      return bad(f + ".window", quote_for_error(b.window()) + " is not day or 30d");
    }
    if (b.day_grams_size() != static_cast<int>(s.day_grams.size())) {
      return bad(f + ".day_grams", std::to_string(b.day_grams_size()) + " days, expected 30");
    }
    for (int d = 0; d < b.day_grams_size(); ++d) {
      if (!amount(b.day_grams(d))) {
        return bad_amount(f + ".day_grams[" + std::to_string(d) + "]", b.day_grams(d));
      }
      s.day_grams[static_cast<std::size_t>(d)] = b.day_grams(d);
    }
    if (b.last_day() < -1) return bad(f + ".last_day", std::to_string(b.last_day()));
    s.last_day = b.last_day();
    out.budgets.push_back(std::move(s));
  }
  return std::nullopt;
}

// A whole file, or nullopt when there is none.
Result<std::optional<std::string>> read_whole(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return error_from_errno(errno, path.string(), "open");
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return error_from_errno(err, path.string(), "fstat");
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxPayloadBytes + kHeaderBytes) {
    ::close(fd);
    return Error{ErrorKind::malformed, path.string(),
                 std::to_string(st.st_size) + " bytes, more than a checkpoint can hold"};
  }
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    ssize_t n = ::read(fd, data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return error_from_errno(err, path.string(), "read");
    }
    if (n == 0) break;  // shrank while we read: what we have is judged as it is
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  ::close(fd);
  return std::optional<std::string>{std::move(data)};
}

Result<bool> fail(int err, const std::filesystem::path& path, std::string_view what) {
  return error_from_errno(err, path.string(), what);
}

}  // namespace

std::string_view to_string(Reason reason) {
  switch (reason) {
    case Reason::empty:
      return "empty";
    case Reason::truncated:
      return "truncated";
    case Reason::bad_magic:
      return "bad_magic";
    case Reason::checksum:
      return "checksum";
    case Reason::malformed:
      return "malformed";
    case Reason::newer_format:
      return "newer_format";
    case Reason::foreign_host:
      return "foreign_host";
    case Reason::read:
      return "read";
    case Reason::write:
      return "write";
  }
  return "unknown";
}

std::string encode_checkpoint(const CheckpointState& s) {
  // An arena: tens of thousands of small strings and messages, freed at once.
  google::protobuf::Arena arena;
  pb::Checkpoint& m = *google::protobuf::Arena::CreateMessage<pb::Checkpoint>(&arena);
  m.set_format_version(kCheckpointFormatVersion);
  m.mutable_host()->set_machine_id(s.host.machine_id);
  m.mutable_host()->set_hostname(s.host.hostname);
  m.set_written_unix_ms(s.written_ms);
  for (const auto& t : s.node) {
    auto* n = m.add_node();
    n->set_source(t.source);
    n->set_domain(t.domain);
    n->set_socket(t.socket);
    n->set_joules(t.joules);
    n->set_measured(t.measured);
  }
  for (const auto& [d, j] : s.attribution.idle_joules) (*m.mutable_idle_joules())[d] = j;
  for (const auto& [d, j] : s.attribution.unattributed_joules) {
    (*m.mutable_unattributed_joules())[d] = j;
  }
  // One entry per workload, whether attribution still tracks it, carbon does, or both.
  // Keyed by the identities in `s`, which outlive the map: no copy of five strings per workload.
  struct IdHash {
    std::size_t operator()(const WorkloadId* id) const { return WorkloadIdHash{}(*id); }
  };
  struct IdEq {
    bool operator()(const WorkloadId* a, const WorkloadId* b) const { return *a == *b; }
  };
  std::unordered_map<const WorkloadId*, pb::Workload*, IdHash, IdEq> entries;
  entries.reserve(s.attribution.workloads.size() + s.carbon.workloads.size());
  m.mutable_workloads()->Reserve(static_cast<int>(s.carbon.workloads.size()));
  auto entry = [&](const WorkloadId& id) {
    auto [it, fresh] = entries.try_emplace(&id, nullptr);
    if (fresh) {
      pb::Workload* w = m.add_workloads();
      w->set_workload(id.workload);
      w->set_kind(id.kind);
      w->set_namespace_(id.namespace_);
      w->set_pod(id.pod);
      w->set_container(id.container);
      it->second = w;
    }
    return it->second;
  };
  for (const auto& t : s.attribution.workloads) {
    auto* a = entry(t.id)->mutable_attributed();
    a->set_cpu_seconds(t.cpu_seconds);
    a->set_last_seen_unix_ms(t.last_seen_ms);
    a->set_host_joules(t.host_joules);
    a->set_first_seen_unix_ms(t.first_seen_ms);
    a->set_ended(t.ended);
    for (const auto& [key, j] : t.joules) {
      auto* e = a->add_joules();
      e->set_source(key.first);
      e->set_domain(key.second);
      e->set_joules(j);
    }
    for (const auto& [key, j] : t.gpu_joules) {
      auto* e = a->add_gpu();
      e->set_source(std::get<0>(key));
      e->set_device(std::get<1>(key));
      e->set_split(std::get<2>(key));
      e->set_joules(j);
    }
  }
  for (const auto& [id, g] : s.carbon.workloads) {
    auto* c = entry(id)->mutable_carbon();
    c->set_operational(g.operational);
    c->set_embodied(g.embodied);
    c->set_cfe_joules(g.cfe_joules);
    if (auto seen = s.carbon.last_seen_ms.find(id); seen != s.carbon.last_seen_ms.end()) {
      entry(id)->set_carbon_last_seen_unix_ms(seen->second);
    }
  }
  m.mutable_idle_carbon()->set_operational(s.carbon.idle.operational);
  m.mutable_idle_carbon()->set_embodied(s.carbon.idle.embodied);
  m.set_unattributed_operational_grams(s.carbon.unattributed_operational);
  m.mutable_idle_carbon()->set_cfe_joules(s.carbon.idle.cfe_joules);
  m.set_unattributed_cfe_joules(s.carbon.unattributed_cfe_joules);
  m.set_platform_shortfall_joules(s.attribution.platform_shortfall_joules);
  m.set_host_joules(s.attribution.host_joules);
  for (const auto& b : s.budgets) {
    auto* p = m.add_budgets();
    p->set_workload(b.budget.workload);
    p->set_kind(b.budget.kind);
    p->set_window(std::string(window_name(b.budget.window)));
    for (double g : b.day_grams) p->add_day_grams(g);
    p->set_last_day(b.last_day);
  }
  if (!s.series_starts.empty()) {
    std::unordered_map<std::string, int64_t> start_of;
    for (const auto& st : s.series_starts)
      start_of.emplace(SeriesStarts::key(st.family, st.labels), st.start_ms);
    const auto totals = sorted_totals(s);
    int64_t previous = 0;
    m.mutable_total_start_deltas()->Reserve(static_cast<int>(totals.size()));
    for (const auto& t : totals) {
      auto it = start_of.find(t.key);
      const int64_t start = it == start_of.end() ? 0 : it->second;
      m.add_total_start_deltas(start - previous);
      previous = start;
    }
    m.set_totals_crc(totals_crc(totals));
  }

  const std::size_t size = m.ByteSizeLong();
  std::string out;
  out.reserve(kHeaderBytes + size);
  out.append(kMagic, sizeof kMagic);
  put_le(out, kCheckpointFormatVersion, 4);
  put_le(out, size, 8);
  put_le(out, 0, 4);  // the CRC, once the payload is in place
  out.resize(kHeaderBytes + size);
  {
    // Straight into the file's buffer. Deterministic: the same totals give the same bytes
    // (protobuf maps are unordered otherwise).
    google::protobuf::io::ArrayOutputStream stream(out.data() + kHeaderBytes,
                                                   static_cast<int>(size));
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeWithCachedSizes(&coded);
  }
  uint32_t crc =
      frame_crc(std::string_view(out).substr(4, 12), std::string_view(out).substr(kHeaderBytes));
  for (int i = 0; i < 4; ++i) out[16 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return out;
}

std::variant<CheckpointState, CheckpointFault> decode_checkpoint(std::string_view file) {
  if (file.empty()) return fault(Reason::empty, "0 bytes");
  std::string_view magic(kMagic, sizeof kMagic);
  if (file.substr(0, magic.size()) != magic.substr(0, std::min(file.size(), magic.size()))) {
    return fault(Reason::bad_magic,
                 "starts with " + quote_for_error(file.substr(0, 4)) + ", not \"WPCK\"");
  }
  if (file.size() < kHeaderBytes) {
    return fault(Reason::truncated, std::to_string(file.size()) + " bytes, shorter than the " +
                                        std::to_string(kHeaderBytes) + "-byte header");
  }
  const auto version = static_cast<uint32_t>(get_le(file, 4, 4));
  const uint64_t length = get_le(file, 8, 8);
  const auto crc = static_cast<uint32_t>(get_le(file, 16, 4));
  const uint64_t have = file.size() - kHeaderBytes;
  if (length > kMaxPayloadBytes) {
    return fault(Reason::malformed, "the header announces " + std::to_string(length) +
                                        " payload bytes, more than a checkpoint can hold");
  }
  if (have < length) {
    return fault(Reason::truncated, std::to_string(have) + " payload bytes of the " +
                                        std::to_string(length) + " the header announces");
  }
  if (have > length) {
    return fault(Reason::malformed,
                 std::to_string(have - length) + " bytes after the payload the header announces");
  }
  std::string_view payload = file.substr(kHeaderBytes);
  if (uint32_t actual = frame_crc(file.substr(4, 12), payload); actual != crc) {
    return fault(Reason::checksum, "CRC32 is " + hex32(actual) + ", the header says " + hex32(crc));
  }
  if (version > kCheckpointFormatVersion) {
    return fault(Reason::newer_format, "format version " + std::to_string(version) +
                                           ", this wattprobe reads up to " +
                                           std::to_string(kCheckpointFormatVersion));
  }
  if (version == 0) return fault(Reason::malformed, "format version 0");
  google::protobuf::Arena arena;
  pb::Checkpoint& m = *google::protobuf::Arena::CreateMessage<pb::Checkpoint>(&arena);
  if (!m.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return fault(Reason::malformed, "the payload is not a checkpoint message");
  }
  if (m.format_version() != version) {
    return fault(Reason::malformed, "the payload says format version " +
                                        std::to_string(m.format_version()) + ", the header " +
                                        std::to_string(version));
  }
  CheckpointState state;
  if (auto f = from_message(m, state)) return *f;
  state.format_version = version;
  if (m.total_start_deltas_size() > 0) {
    const auto totals = sorted_totals(state);
    // Another set of totals than the one the start times were written for would be a bug, not
    // damage (the checksum was right): the totals are restored, their start times are not.
    if (totals.size() == static_cast<std::size_t>(m.total_start_deltas_size()) &&
        totals_crc(totals) == m.totals_crc()) {
      int64_t start = 0;
      for (std::size_t i = 0; i < totals.size(); ++i) {
        const bool overflow =
            __builtin_add_overflow(start, m.total_start_deltas(static_cast<int>(i)), &start);
        if (!overflow && start == 0) continue;
        // A start after the file was written is a clock that cannot be trusted, not a start.
        if (overflow || start < 0 || (state.written_ms > 0 && start > state.written_ms)) {
          return fault(Reason::malformed, "total_start_deltas: " + totals[i].family +
                                              " starts at " + std::to_string(start) +
                                              " ms, not between the epoch and the file's writing");
        }
        state.series_starts.push_back({totals[i].family, totals[i].labels, start});
      }
    }
  }
  return state;
}

CheckpointState capture_totals(const EnergyMeter& meter, const Attribution& attribution,
                               const Carbon* carbon) {
  CheckpointState s;
  s.node = meter.totals();
  s.attribution = attribution.totals();
  if (carbon) {
    s.carbon = carbon->totals();
    s.budgets = carbon->budgets();
  }
  return s;
}

void restore_totals(const CheckpointState& s, EnergyMeter& meter, Attribution& attribution,
                    Carbon* carbon) {
  for (const auto& t : s.node) {
    meter.restore_total(t.source, t.domain, t.socket, t.joules, t.measured);
  }
  attribution.restore(s.attribution);
  if (carbon) {
    carbon->restore(s.carbon);
    carbon->restore_budgets(s.budgets);
    for (const auto& w : s.attribution.workloads) {
      if (w.ended) carbon->restore_ended_run(w.id);
    }
  }
}

CheckpointStore::CheckpointStore(std::filesystem::path dir, HostIdentity self)
    : dir_(std::move(dir)), self_(std::move(self)) {}

std::string CheckpointStore::set_aside(const std::filesystem::path& file, std::string_view why) {
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  std::filesystem::path target =
      file.string() + "." + std::string(why) + "-" + std::to_string(now_s);
  for (int n = 1; std::filesystem::exists(target); ++n) {
    target = file.string() + "." + std::string(why) + "-" + std::to_string(now_s) + "." +
             std::to_string(n);
  }
  if (::rename(file.c_str(), target.c_str()) == 0) {
    return "checkpoint " + file.string() + ": kept aside as " + target.string();
  }
  return "checkpoint " + file.string() + ": cannot keep it aside as " + target.string() + ": " +
         std::strerror(errno);
}

CheckpointStore::Loaded CheckpointStore::load(bool set_aside_bad) {
  std::vector<std::string> log;
  for (const std::filesystem::path& file : {current(), previous()}) {
    // Whoever planted a link here wants the agent to read, or later overwrite, another file.
    std::error_code ec;
    if (std::filesystem::is_symlink(file, ec)) {
      Loaded refused;
      refused.log = std::move(log);
      refused.refusal = "checkpoint " + file.string() + " is a symbolic link (to " +
                        std::filesystem::read_symlink(file, ec).string() +
                        "): refusing to follow it; a state file must be a regular file the agent "
                        "wrote (remove the link to start from zero)";
      return refused;
    }
    auto bytes = read_whole(file);
    if (!bytes) {
      count(Reason::read);
      log.push_back("checkpoint " + file.string() + ": read: " + bytes.error().message());
      continue;
    }
    if (!*bytes) continue;
    auto decoded = decode_checkpoint(**bytes);
    if (auto* f = std::get_if<CheckpointFault>(&decoded)) {
      if (f->reason == Reason::newer_format) {
        Loaded refused;
        refused.log = std::move(log);
        refused.refusal = "checkpoint " + file.string() + " has " + f->detail +
                          ": refusing to start, so that this older wattprobe does not overwrite "
                          "the newer one's totals (run the newer wattprobe, or move the file "
                          "away to start from zero)";
        return refused;
      }
      count(f->reason);
      log.push_back("checkpoint " + file.string() +
                    " is unusable: " + std::string(to_string(f->reason)) + ": " + f->detail);
      if (set_aside_bad) log.push_back(set_aside(file, "corrupt"));
      continue;
    }
    auto& state = std::get<CheckpointState>(decoded);
    if (!same_host(self_, state.host)) {
      count(Reason::foreign_host);
      log.push_back("checkpoint " + file.string() + " was written by " + describe(state.host) +
                    ", not this " + describe(self_) +
                    " (a cloned disk image?): not restored; totals start from zero");
      if (set_aside_bad) log.push_back(set_aside(file, "foreign"));
      continue;
    }
    if (file != current()) {
      log.push_back("checkpoint: using the previous good one, " + file.string());
    }
    Loaded loaded;
    loaded.log = std::move(log);
    loaded.state = std::move(state);
    loaded.file = file;
    return loaded;
  }
  Loaded none;
  none.log = std::move(log);
  return none;
}

Result<bool> CheckpointStore::write(std::string_view file) {
  const std::filesystem::path tmp = dir_ / "checkpoint.pb.tmp";
  // A leftover (or planted) tmp file or link is removed, and O_EXCL | O_NOFOLLOW make sure the
  // bytes go into a new file of the agent's own, never through a link.
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0) return fail(errno, tmp, "open");
  std::size_t done = 0;
  while (done < file.size()) {
    ssize_t n = ::write(fd, file.data() + done, file.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fail(err, tmp, "write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return fail(err, tmp, "fsync");
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err, tmp, "close");
  }
  // The current file becomes .prev before the new one takes its name. A crash between the two
  // renames leaves .prev alone, which load() then uses: the last good state is never lost.
  if (::rename(current().c_str(), previous().c_str()) != 0 && errno != ENOENT) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err, current(), "rename to .prev");
  }
  if (::rename(tmp.c_str(), current().c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(err, tmp, "rename");
  }
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return fail(errno, dir_, "open folder");
  int rc = ::fsync(dfd);
  int err = errno;
  ::close(dfd);
  if (rc != 0) return fail(err, dir_, "fsync folder");
  return true;
}

Result<CheckpointKeeper::Restored> CheckpointKeeper::restore() {
  Restored out;
  std::error_code ec;
  std::filesystem::create_directories(store_.dir(), ec);
  if (ec) {
    out.log.push_back("state folder " + store_.dir().string() + ": " + ec.message() +
                      "; checkpoints will fail");
  }
  CheckpointStore::Loaded loaded = store_.load();
  out.log.insert(out.log.end(), loaded.log.begin(), loaded.log.end());
  if (loaded.refusal) return Error{ErrorKind::unsupported, "", *loaded.refusal};
  if (!loaded.state) {
    out.log.push_back("no usable checkpoint in " + store_.dir().string() +
                      ": totals start from zero");
    return out;
  }
  char line[64];
  std::snprintf(line, sizeof line, "%.3f", (wall_clock_ms() - loaded.state->written_ms) / 1000.0);
  out.log.push_back("totals restored from " + loaded.file.string() + " (written " + line +
                    " s ago, " + std::to_string(loaded.state->attribution.workloads.size()) +
                    " workloads)");
  out.state = std::move(loaded.state);
  return out;
}

bool CheckpointKeeper::due() const {
  return !last_attempt_ || std::chrono::steady_clock::now() - *last_attempt_ >= interval_;
}

Result<bool> CheckpointKeeper::write(CheckpointState s) {
  auto start = std::chrono::steady_clock::now();
  last_attempt_ = start;
  s.host = store_.self();
  s.written_ms = wall_clock_ms();
  std::string file = encode_checkpoint(s);
  auto written = store_.write(file);
  if (!written) {
    store_.count(Reason::write);
    return written.error();
  }
  last_duration_s_ =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  last_success_s_ = static_cast<double>(s.written_ms) / 1000.0;
  last_bytes_ = file.size();
  return true;
}

void CheckpointKeeper::append_families(std::vector<Family>& out) const {
  out.push_back({"wattprobe_agent_checkpoint_last_success_timestamp_seconds",
                 "Wall-clock time of the last checkpoint written (0: none yet).",
                 MetricType::gauge,
                 {{{}, last_success_s_}}});
  out.push_back({"wattprobe_agent_checkpoint_duration_seconds",
                 "Time the last successful checkpoint took: collect, encode, write, fsync.",
                 MetricType::gauge,
                 {{{}, last_duration_s_}}});
  out.push_back({"wattprobe_agent_checkpoint_bytes",
                 "Size of the last checkpoint written.",
                 MetricType::gauge,
                 {{{}, static_cast<double>(last_bytes_)}}});
  Family errors{"wattprobe_agent_checkpoint_errors_total",
                "Checkpoints that could not be used at start (set aside) or not be written, "
                "by reason.",
                MetricType::counter,
                {}};
  for (Reason r : {Reason::empty, Reason::truncated, Reason::bad_magic, Reason::checksum,
                   Reason::malformed, Reason::foreign_host, Reason::read, Reason::write}) {
    auto it = store_.errors().find(r);
    double n = it == store_.errors().end() ? 0 : static_cast<double>(it->second);
    errors.series.push_back({{{"reason", std::string(to_string(r))}}, n});
  }
  out.push_back(std::move(errors));
}

std::vector<Family> checkpoint_families(const CheckpointState& s) {
  Family node{"wattprobe_node_energy_joules_total", "", MetricType::counter, {}};
  std::map<std::pair<std::string, std::string>, bool> measured;
  for (const auto& t : s.node) {
    node.series.push_back({{{"source", t.source},
                            {"domain", t.domain},
                            {"socket", t.socket < 0 ? "" : std::to_string(t.socket)}},
                           t.joules});
    measured[{t.source, t.domain}] = t.measured;
  }
  Family idle{"wattprobe_node_idle_energy_joules_total", "", MetricType::counter, {}};
  for (const auto& [d, j] : s.attribution.idle_joules) idle.series.push_back({{{"domain", d}}, j});
  Family unattributed{
      "wattprobe_node_unattributed_energy_joules_total", "", MetricType::counter, {}};
  for (const auto& [d, j] : s.attribution.unattributed_joules) {
    unattributed.series.push_back({{{"domain", d}}, j});
  }
  Family energy{"wattprobe_workload_energy_joules_total", "", MetricType::counter, {}};
  Family cpu{"wattprobe_workload_cpu_seconds_total", "", MetricType::counter, {}};
  Family gpu{"wattprobe_workload_gpu_energy_joules_total", "", MetricType::counter, {}};
  Family host{"wattprobe_workload_host_energy_joules_total", "", MetricType::counter, {}};
  for (const auto& w : s.attribution.workloads) {
    Labels base = workload_labels(w.id);
    cpu.series.push_back({base, w.cpu_seconds});
    host.series.push_back({base, w.host_joules});
    for (const auto& [key, j] : w.gpu_joules) {
      Labels l = base;
      l.emplace_back("source", std::get<0>(key));
      l.emplace_back("device", std::to_string(std::get<1>(key)));
      l.emplace_back("split", std::get<2>(key));
      gpu.series.push_back({std::move(l), j});
    }
    for (const auto& [key, j] : w.joules) {
      Labels l = base;
      l.emplace_back("domain", key.second);
      l.emplace_back("source", key.first);
      auto m = measured.find(key);
      l.emplace_back("measured", m == measured.end() || m->second ? "true" : "false");
      energy.series.push_back({std::move(l), j});
    }
  }
  Family op{"wattprobe_workload_operational_co2e_grams_total", "", MetricType::counter, {}};
  Family em{"wattprobe_workload_embodied_co2e_grams_total", "", MetricType::counter, {}};
  for (const auto& [id, g] : s.carbon.workloads) {
    op.series.push_back({workload_labels(id), g.operational});
    em.series.push_back({workload_labels(id), g.embodied});
  }
  std::vector<Family> out;
  Family shortfall{"wattprobe_node_platform_shortfall_joules_total",
                   "",
                   MetricType::counter,
                   {{{}, s.attribution.platform_shortfall_joules}}};
  Family node_host{"wattprobe_node_host_energy_joules_total",
                   "",
                   MetricType::counter,
                   {{{}, s.attribution.host_joules}}};
  for (Family* f : {&node, &idle, &unattributed, &energy, &cpu, &gpu, &host, &shortfall, &node_host,
                    &op, &em}) {
    f->help = "From the checkpoint.";
    out.push_back(std::move(*f));
  }
  out.push_back({"wattprobe_node_idle_operational_co2e_grams_total",
                 "From the checkpoint.",
                 MetricType::counter,
                 {{{}, s.carbon.idle.operational}}});
  out.push_back({"wattprobe_node_idle_embodied_co2e_grams_total",
                 "From the checkpoint.",
                 MetricType::counter,
                 {{{}, s.carbon.idle.embodied}}});
  out.push_back({"wattprobe_node_unattributed_operational_co2e_grams_total",
                 "From the checkpoint.",
                 MetricType::counter,
                 {{{}, s.carbon.unattributed_operational}}});
  // As the agent: CFE families only once a carbon-free share was in force.
  if (s.carbon.idle.cfe_joules > 0 || s.carbon.unattributed_cfe_joules > 0) {
    Family cfe{"wattprobe_workload_cfe_energy_joules_total",
               "From the checkpoint.",
               MetricType::counter,
               {}};
    for (const auto& [id, g] : s.carbon.workloads) {
      cfe.series.push_back({workload_labels(id), g.cfe_joules});
    }
    out.push_back(std::move(cfe));
    out.push_back({"wattprobe_node_idle_cfe_energy_joules_total",
                   "From the checkpoint.",
                   MetricType::counter,
                   {{{}, s.carbon.idle.cfe_joules}}});
    out.push_back({"wattprobe_node_unattributed_cfe_energy_joules_total",
                   "From the checkpoint.",
                   MetricType::counter,
                   {{{}, s.carbon.unattributed_cfe_joules}}});
  }
  return out;
}

}  // namespace wattprobe
