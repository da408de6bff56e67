#include "collectors/energy/host_energy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <system_error>

#include "agent/base/log.h"
#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"

namespace wattprobe {

namespace {

namespace fs = std::filesystem;

/// How long the sequence may stand still before the host counts as gone: a few of its ticks, and
/// never under 3 s, so one late write or a guest tick between two host ticks is not a stall.
std::chrono::milliseconds stale_after(const GuestEnergyFile& f) {
  double seconds = std::max(3.0, 3.0 * f.interval_seconds);
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
}

constexpr std::string_view kRemedy =
    "on the host run `wattprobe run --guest-energy-dir DIR` and share DIR/<vm name> with this VM "
    "read-only (virtiofs or 9p; a hostPath for KubeVirt); README \"Virtual machines\"";

}  // namespace

HostEnergySource::HostEnergySource(fs::path path, Clock clock)
    : path_(std::move(path)),
      clock_(clock ? std::move(clock) : Clock([] { return std::chrono::steady_clock::now(); })) {}

fs::path HostEnergySource::file() const {
  std::error_code ec;
  if (fs::is_directory(path_, ec)) return path_ / kGuestEnergyFileName;
  return path_;
}

Result<GuestEnergyFile> HostEnergySource::read() const {
  const fs::path f = file();
  auto text = read_text(f, kGuestEnergyMaxBytes);
  if (!text.ok()) return text.error();
  return parse_guest_energy(*text, f.string());
}

Availability HostEnergySource::probe() {
  Availability a;
  if (path_.empty()) {
    a.reason = "no --host-energy-path (the VM's folder from the host's --guest-energy-dir)";
    a.remedy = std::string(kRemedy);
    return a;
  }
  auto got = read();
  if (!got.ok() && got.error().kind == ErrorKind::absent) {
    a.available = true;
    a.reason = "not yet available: " + got.error().message() +
               "; waiting for the host agent's first file (energy counts from it)";
    a.remedy = std::string(kRemedy);
    return a;
  }
  if (!got.ok()) {
    a.reason = got.error().message();
    a.remedy = got.error().kind == ErrorKind::unsupported ? "upgrade wattprobe in this VM"
                                                          : std::string(kRemedy);
    return a;
  }
  a.available = true;
  std::string domains;
  for (const GuestEnergyDomain& d : got->domains) {
    domains += (domains.empty() ? "" : ", ") + d.domain + (d.measured ? "" : " (estimated)");
  }
  a.reason = "VM " + got->vm + " on its host, sequence " + std::to_string(got->sequence) +
             (domains.empty() ? ", no domains yet" : ", domains: " + domains);
  return a;
}

Sample HostEnergySource::sample() {
  Sample out;
  const auto now = clock_();
  auto got = read();
  std::string problem;
  if (got.ok()) {
    if (!last_ || got->sequence != last_->sequence) last_change_ = now;
    last_ = std::move(*got);
  } else {
    out.errors.push_back(got.error());
    problem = got.error().message();
  }
  const bool was_stale = stale_;
  const bool gone = !got.ok() && got.error().kind == ErrorKind::absent;
  stale_ = !last_ || gone || (last_change_ && now - *last_change_ > stale_after(*last_));
  if (stale_ && problem.empty() && last_) {
    problem = file().string() + ": sequence " + std::to_string(last_->sequence) +
              " has not changed for " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(now - *last_change_).count()) +
              " s: the host agent stopped or cannot write";
  }
  if (!last_ && !got.ok() && got.error().kind == ErrorKind::absent) {
    problem = "not yet available: " + problem +
              "; waiting for the host agent's first file (energy counts from it)";
  }
  if (problem != last_problem_) {
    if (!problem.empty() && !last_) {
      log_printf("host energy: %s", problem.c_str());
    } else if (!problem.empty()) {
      log_printf("host energy: %s%s", problem.c_str(),
                 stale_ ? "; not claimed as measured until the host's figures move again" : "");
    } else if (was_stale) {
      log_printf("host energy: %s moves again (VM %s, sequence %llu)", file().c_str(),
                 last_->vm.c_str(), static_cast<unsigned long long>(last_->sequence));
    }
    last_problem_ = problem;
  }
  if (!last_) return out;
  for (const GuestEnergyDomain& d : last_->domains) {
    Reading r;
    r.domain = d.domain;
    r.key = "host:" + d.domain;
    r.kind = ReadingKind::energy_counter;
    r.raw = static_cast<uint64_t>(std::llround(d.joules * 1e6));
    r.modulus = 0;
    r.unit_joules = 1e-6;
    r.reset_when_lower = true;
    r.measured = d.measured;
    r.known_stalled = stale_;
    out.readings.push_back(std::move(r));
  }
  return out;
}

void HostEnergySource::append_families(std::vector<Family>& out) const {
  const std::string_view now = !last_ ? "waiting" : stale_ ? "stale" : "ok";
  Family f{"wattprobe_host_energy_state",
           "Guest: the host's energy file, 1 for the state it is in: waiting (no good file read "
           "since start), ok (measured figures moving), stale (gone, bad or still).",
           MetricType::gauge,
           {}};
  for (std::string_view state : {"waiting", "ok", "stale"}) {
    f.series.push_back({{{"state", std::string(state)}}, state == now ? 1.0 : 0.0});
  }
  out.push_back(std::move(f));
}

DoctorSection HostEnergySource::doctor_section() {
  if (path_.empty()) return {};
  return {"VM passthrough (--host-energy-path " + path_.string() + ")", doctor_report()};
}

std::vector<std::string> HostEnergySource::doctor_report() const {
  std::vector<std::string> out;
  if (path_.empty()) {
    out.push_back("not configured: --host-energy-path names the VM's folder the host shares");
    out.push_back("to use it: " + std::string(kRemedy));
    return out;
  }
  std::error_code ec;
  if (!fs::exists(path_, ec)) {
    out.push_back(path_.string() + ": nothing there (is the share mounted?)");
    out.push_back("to fix: " + std::string(kRemedy));
    return out;
  }
  const fs::path f = file();
  auto got = read();
  if (!got.ok()) {
    out.push_back(f.string() + ": " + got.error().message());
    if (got.error().kind == ErrorKind::absent) {
      out.push_back("the folder is there but holds no " + std::string(kGuestEnergyFileName) +
                    ": the host agent is not writing it for this VM (is the VM's cgroup found as "
                    "kind vm on the host? `wattprobe top` there shows it)");
      out.push_back("to fix: " + std::string(kRemedy));
    } else if (got.error().kind == ErrorKind::unsupported) {
      out.push_back("to fix: upgrade wattprobe in this VM to read the host's version");
    } else {
      out.push_back(
          "to fix: the file must be the host agent's own; check nothing else writes "
          "DIR/<vm> on the host");
    }
    return out;
  }
  const int64_t age_ms = wall_clock_ms() - got->host_time_ms;
  out.push_back(f.string() + ": VM " + got->vm + ", version " + std::to_string(got->version) +
                ", sequence " + std::to_string(got->sequence) + ", written " +
                std::to_string(age_ms / 1000) + " s ago by the host's clock (host tick " +
                std::to_string(got->interval_seconds) + " s)");
  for (const GuestEnergyDomain& d : got->domains) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", d.joules);
    out.push_back("  " + d.domain + ": " + buf + " J, " +
                  (d.measured ? "measured on the host" : "estimated on the host"));
  }
  out.push_back(std::string("idle power ") + (got->idle_included ? "included" : "not included") +
                " (host --idle-attribution=" + got->idle_attribution + "); host PUE " +
                std::to_string(got->pue) +
                (got->grid_intensity ? ", grid " + std::to_string(*got->grid_intensity) + " g/kWh"
                                     : ", grid intensity not known yet"));
  if (age_ms > static_cast<int64_t>(stale_after(*got).count())) {
    out.push_back("STALE: the host has not written it for " + std::to_string(age_ms / 1000) +
                  " s; run falls back to the model estimate until it moves (is the host agent "
                  "running?)");
  }
  return out;
}

std::unique_ptr<EnergySource> make_host_energy_source(const fs::path& path) {
  return std::make_unique<HostEnergySource>(path);
}

}  // namespace wattprobe
