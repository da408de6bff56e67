#include "collectors/energy/rapl_powercap.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <system_error>
#include <utility>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kControlType = "intel-rapl";

constexpr std::string_view kPermissionRemedy =
    "energy_uj is readable only by root (mode 0400 since CVE-2020-8694): run as root, or a udev "
    "rule: chgrp <group> + chmod 0440 on energy_uj, e.g. SUBSYSTEM==\"powercap\", "
    "ACTION==\"add\", RUN+=\"/bin/chgrp wattprobe /sys%p/energy_uj\", "
    "RUN+=\"/bin/chmod 0440 /sys%p/energy_uj\"";

bool parse_int(std::string_view text, int base, int& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && end == text.data() + text.size() && out >= 0;
}

// "intel-rapl:0:a" → {0, 10}. The kernel names zones "%s:%x" (powercap_sys.c), so ids are hex.
// "intel-rapl-mmio:0" and anything else → nullopt.
std::optional<std::vector<int>> parse_zone_ids(std::string_view folder) {
  if (folder.size() <= kControlType.size() ||
      folder.substr(0, kControlType.size()) != kControlType || folder[kControlType.size()] != ':') {
    return std::nullopt;
  }
  std::vector<int> ids;
  std::string_view rest = folder.substr(kControlType.size() + 1);
  for (;;) {
    auto colon = rest.find(':');
    int id = 0;
    if (!parse_int(rest.substr(0, colon), 16, id)) return std::nullopt;
    ids.push_back(id);
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return ids;
}

std::string parent_key(std::string_view key) { return std::string(key.substr(0, key.rfind(':'))); }

// `enabled` holds 0 or 1; a missing or odd file counts as enabled, since the meter reads energy
// whatever the capping state.
bool read_enabled(const fs::path& file) {
  auto v = read_u64(file);
  return !v.ok() || *v != 0;
}

Result<uint64_t> read_energy(const HeldFile& file) {
  auto text = file.read(256);
  if (!text) return text.error();
  return parse_u64(*text, file.path());
}

}  // namespace

std::optional<RaplZoneName> parse_rapl_zone_name(std::string_view name) {
  name = trim(name);
  if (name == "core" || name == "uncore" || name == "dram" || name == "psys") {
    return RaplZoneName{std::string(name), -1, -1};
  }
  constexpr std::string_view kPackage = "package-";
  if (name.substr(0, kPackage.size()) != kPackage) return std::nullopt;
  std::string_view rest = name.substr(kPackage.size());
  constexpr std::string_view kDie = "-die-";
  auto die_at = rest.find(kDie);
  RaplZoneName out{"package", -1, -1};
  if (!parse_int(rest.substr(0, die_at), 10, out.socket)) return std::nullopt;
  if (die_at != std::string_view::npos &&
      !parse_int(rest.substr(die_at + kDie.size()), 10, out.die)) {
    return std::nullopt;
  }
  return out;
}

RaplPowercapSource::RaplPowercapSource(const HostPaths& paths) : paths_(paths) {}

Availability RaplPowercapSource::probe() {
  probed_ = true;
  zones_.clear();
  const fs::path root = paths_.sys("class/powercap");
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return {false,
            "no " + root.string() +
                ": kernel without CONFIG_POWERCAP / CONFIG_INTEL_RAPL, or not x86; in a VM RAPL "
                "is usually not exposed",
            ""};
  }

  std::vector<std::pair<std::vector<int>, std::string>> found;
  bool saw_mmio = false;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string folder = it->path().filename().string();
    if (folder.rfind("intel-rapl-mmio", 0) == 0) {
      saw_mmio = true;
      continue;
    }
    if (auto ids = parse_zone_ids(folder)) found.emplace_back(std::move(*ids), folder);
  }
  if (ec) {
    Error e = error_from_errno(ec.value(), root.string(), "list");
    return {false, e.message(),
            e.kind == ErrorKind::permission ? std::string(kPermissionRemedy) : ""};
  }
  // Id order puts every parent before its subzones, so a subzone can take its parent's socket.
  std::sort(found.begin(), found.end());

  std::vector<std::string> notes;
  if (saw_mmio) notes.push_back("ignored intel-rapl-mmio (the same package counter again)");
  if (!read_enabled(root / kControlType / "enabled")) {
    notes.push_back("control type intel-rapl disabled (capping off; the counters still count)");
  }

  std::map<std::string, int> socket_of;
  std::vector<Error> read_errors;
  int readable = 0;
  for (const auto& [ids, key] : found) {
    const fs::path dir = root / key;
    auto name_text = read_text(dir / "name");
    if (!name_text) {
      notes.push_back("skipped " + key + ": " + name_text.error().message());
      continue;
    }
    const std::string zone_name(trim(*name_text));
    auto parsed = parse_rapl_zone_name(zone_name);
    if (!parsed) {
      notes.push_back("skipped " + key + ": unknown domain " + quote_for_error(zone_name));
      continue;
    }
    int socket = parsed->socket;
    if (ids.size() > 1) {
      auto parent = socket_of.find(parent_key(key));
      socket = parent == socket_of.end() ? -1 : parent->second;
    }
    socket_of[key] = socket;

    auto max = read_u64(dir / "max_energy_range_uj");
    if (!max) {
      notes.push_back("skipped " + key + ": " + max.error().message());
      continue;
    }
    if (*max == 0) {
      notes.push_back("skipped " + key + ": max_energy_range_uj is 0");
      continue;
    }

    Zone zone{key,
              zone_name,
              parsed->domain,
              socket,
              read_enabled(dir / "enabled"),
              *max,
              dir / "energy_uj",
              {}};
    auto held = HeldFile::open(zone.energy_file);
    if (held) zone.energy = std::move(*held);
    Result<uint64_t> energy = held ? read_energy(zone.energy) : Result<uint64_t>(held.error());
    if (!zone.enabled) {
      // Disabling a zone turns off power limiting, not the energy status register, so its energy
      // is still real. One that cannot be read either is left out: nothing to report.
      if (!energy) {
        notes.push_back("skipped " + key + ": disabled and " + energy.error().message());
        continue;
      }
      notes.push_back(key + " (" + zone_name + ") disabled, read anyway: the counter still counts");
    }
    if (energy) {
      ++readable;
    } else {
      read_errors.push_back(energy.error());
    }
    zones_.push_back(std::move(zone));
  }

  const bool permission_denied =
      std::any_of(read_errors.begin(), read_errors.end(),
                  [](const Error& e) { return e.kind == ErrorKind::permission; });
  Availability out;
  out.remedy = permission_denied ? std::string(kPermissionRemedy) : "";
  if (zones_.empty()) {
    out.reason = "no intel-rapl zones in " + root.string();
  } else {
    std::vector<std::string> listed;
    for (const auto& z : zones_) listed.push_back(z.name + " (" + z.key + ")");
    out.reason = std::to_string(zones_.size()) + (zones_.size() == 1 ? " zone: " : " zones: ") +
                 join(listed, ", ");
    if (readable == 0) {
      out.reason = "no energy_uj readable in " + out.reason + ": " + read_errors.front().message();
    } else if (!read_errors.empty()) {
      notes.push_back(std::to_string(read_errors.size()) +
                      " unreadable: " + read_errors.front().message());
    }
  }
  if (!notes.empty()) out.reason += "; " + join(notes, "; ");
  out.available = readable > 0;
  return out;
}

Sample RaplPowercapSource::sample() {
  if (!probed_) (void)probe();
  Sample out;
  out.readings.reserve(zones_.size());
  for (auto& z : zones_) {
    if (!z.energy.is_open()) {
      // Unreadable at probe: a udev rule may have made it readable since.
      auto held = HeldFile::open(z.energy_file);
      if (!held) {
        out.errors.push_back(held.error());
        continue;
      }
      z.energy = std::move(*held);
    }
    auto raw = read_energy(z.energy);
    if (!raw) {
      out.errors.push_back(raw.error());
      continue;
    }
    if (*raw > z.max_energy_range_uj) {
      out.errors.push_back(Error{ErrorKind::malformed, z.energy_file.string(),
                                 std::to_string(*raw) + " exceeds max_energy_range_uj " +
                                     std::to_string(z.max_energy_range_uj)});
      continue;
    }
    Reading r;
    r.domain = z.domain;
    r.socket = z.socket;
    r.key = z.key;
    r.kind = ReadingKind::energy_counter;
    // The modulus is max_energy_range_uj itself, as Kepler's energy_zone.go computes the delta
    // on a wrap: (max − prev) + cur. The kernel derives the range from the 32-bit status mask
    // (0xffffffff × energy unit), so energy_uj can print exactly max; that is the register one
    // unit before it wraps, congruent to 0 mod max, and reported as 0 so the reading stays below
    // the modulus. The true period is max + one unit (~61 µJ): one unit lost per wrap, a 2e-10
    // relative error every ~20 minutes at 200 W.
    r.raw = *raw == z.max_energy_range_uj ? 0 : *raw;
    r.modulus = z.max_energy_range_uj;
    r.unit_joules = 1e-6;
    out.readings.push_back(std::move(r));
  }
  return out;
}

std::unique_ptr<EnergySource> make_rapl_powercap_source(const HostPaths& paths) {
  return std::make_unique<RaplPowercapSource>(paths);
}

}  // namespace wattprobe
