#include "agent/base/guest_energy_file.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace wattprobe {

namespace {

using nlohmann::json;

Error bad(const std::string& where, std::string detail) {
  return Error{ErrorKind::malformed, where, std::move(detail)};
}

bool is_label_text(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

}  // namespace

std::string to_json(const GuestEnergyFile& f) {
  nlohmann::ordered_json j;
  j["schema"] = std::string(kGuestEnergySchema);
  j["version"] = f.version;
  j["vm"] = f.vm;
  j["sequence"] = f.sequence;
  j["host_time_ms"] = f.host_time_ms;
  j["interval_seconds"] = f.interval_seconds;
  j["idle_attribution"] = f.idle_attribution;
  j["idle_included"] = f.idle_included;
  j["grid_intensity_grams_per_kwh"] = f.grid_intensity ? nlohmann::ordered_json(*f.grid_intensity)
                                                       : nlohmann::ordered_json(nullptr);
  j["pue"] = f.pue;
  j["domains"] = nlohmann::ordered_json::array();
  for (const GuestEnergyDomain& d : f.domains) {
    nlohmann::ordered_json e;
    e["domain"] = d.domain;
    e["joules"] = d.joules;
    e["measured"] = d.measured;
    j["domains"].push_back(std::move(e));
  }
  return j.dump(2) + "\n";
}

Result<GuestEnergyFile> parse_guest_energy(std::string_view text, const std::string& where) {
  if (text.size() > kGuestEnergyMaxBytes) {
    return bad(where, std::to_string(text.size()) + " bytes, more than the " +
                          std::to_string(kGuestEnergyMaxBytes) + " a host writes");
  }
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return bad(where, "not JSON (truncated or not written by a host agent)");
  if (!j.is_object()) return bad(where, "expected a JSON object");
  auto field = [&](const char* name) -> const json* {
    auto it = j.find(name);
    return it == j.end() ? nullptr : &*it;
  };
  const json* schema = field("schema");
  if (!schema || !schema->is_string() || schema->get<std::string>() != kGuestEnergySchema) {
    return bad(where, "field \"schema\" is not \"" + std::string(kGuestEnergySchema) + "\"");
  }
  const json* version = field("version");
  if (!version || !version->is_number_integer() || version->get<int64_t>() < 1) {
    return bad(where, "field \"version\" is not a positive integer");
  }
  if (version->get<int64_t>() > kGuestEnergyVersion) {
    return Error{ErrorKind::unsupported, where,
                 "version " + std::to_string(version->get<int64_t>()) +
                     " is newer than this agent reads (" + std::to_string(kGuestEnergyVersion) +
                     "): upgrade the guest's wattprobe"};
  }
  GuestEnergyFile f;
  f.version = static_cast<int>(version->get<int64_t>());
  auto need = [&](const char* name, auto check, const char* what) -> Result<const json*> {
    const json* v = field(name);
    if (!v || !check(*v))
      return bad(where, std::string("field \"") + name + "\": expected " + what);
    return v;
  };
  auto is_string = [](const json& v) { return v.is_string(); };
  auto is_uint = [](const json& v) { return v.is_number_unsigned(); };
  auto is_int = [](const json& v) { return v.is_number_integer(); };
  auto is_bool = [](const json& v) { return v.is_boolean(); };
  auto is_num = [](const json& v) { return v.is_number() && std::isfinite(v.get<double>()); };
  auto vm = need("vm", is_string, "a string");
  if (!vm.ok()) return vm.error();
  f.vm = (*vm)->get<std::string>();
  auto seq = need("sequence", is_uint, "a non-negative integer");
  if (!seq.ok()) return seq.error();
  f.sequence = (*seq)->get<uint64_t>();
  auto time = need("host_time_ms", is_int, "an integer");
  if (!time.ok()) return time.error();
  f.host_time_ms = (*time)->get<int64_t>();
  auto interval = need("interval_seconds", is_num, "a number");
  if (!interval.ok()) return interval.error();
  f.interval_seconds = (*interval)->get<double>();
  if (!(f.interval_seconds > 0 && f.interval_seconds <= 3600)) {
    return bad(where, "field \"interval_seconds\": " + std::to_string(f.interval_seconds) +
                          " is not in (0, 3600]");
  }
  auto idle = need("idle_attribution", is_string, "a string");
  if (!idle.ok()) return idle.error();
  f.idle_attribution = (*idle)->get<std::string>();
  auto included = need("idle_included", is_bool, "true or false");
  if (!included.ok()) return included.error();
  f.idle_included = (*included)->get<bool>();
  const json* grid = field("grid_intensity_grams_per_kwh");
  if (!grid || !(grid->is_null() || is_num(*grid))) {
    return bad(where, "field \"grid_intensity_grams_per_kwh\": expected a number or null");
  }
  if (!grid->is_null()) {
    f.grid_intensity = grid->get<double>();
    if (*f.grid_intensity < 0 || *f.grid_intensity > 5000) {
      return bad(where, "field \"grid_intensity_grams_per_kwh\": " +
                            std::to_string(*f.grid_intensity) + " is not in [0, 5000]");
    }
  }
  auto pue = need("pue", is_num, "a number");
  if (!pue.ok()) return pue.error();
  f.pue = (*pue)->get<double>();
  if (!(f.pue >= 1.0 && f.pue <= 3.0)) {
    return bad(where, "field \"pue\": " + std::to_string(f.pue) + " is not in [1, 3]");
  }
  const json* domains = field("domains");
  if (!domains || !domains->is_array() || domains->size() > 64) {
    return bad(where, "field \"domains\": expected an array of at most 64 domains");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < domains->size(); ++i) {
    const json& d = (*domains)[i];
    const std::string at = "domains[" + std::to_string(i) + "]";
    if (!d.is_object()) return bad(where, at + ": expected an object");
    auto name = d.find("domain");
    auto joules = d.find("joules");
    auto measured = d.find("measured");
    if (name == d.end() || !name->is_string() || !is_label_text(name->get<std::string>())) {
      return bad(where, at + ".domain: expected a domain name (a-z, 0-9, _)");
    }
    // 1e13 J is 300 kW for a thousand years; a reader keeps it in 64-bit µJ.
    if (joules == d.end() || !is_num(*joules) || joules->get<double>() < 0 ||
        joules->get<double>() > kGuestEnergyMaxJoules) {
      return bad(where, at + ".joules: expected a number from 0 to 1e13");
    }
    if (measured == d.end() || !measured->is_boolean()) {
      return bad(where, at + ".measured: expected true or false");
    }
    if (!seen.insert(name->get<std::string>()).second) {
      return bad(where, at + ": domain \"" + name->get<std::string>() + "\" named twice");
    }
    f.domains.push_back({name->get<std::string>(), joules->get<double>(), measured->get<bool>()});
  }
  return f;
}

}  // namespace wattprobe
