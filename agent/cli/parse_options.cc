#include "agent/cli/parse_options.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <sstream>

#include "agent/base/duration.h"
#include "agent/base/log.h"
#include "agent/base/secret_file.h"
#include "agent/base/text_file.h"
#include "agent/carbon/grid/registry.h"
#include "collectors/registry.h"
#include "exporters/listen_address.h"

namespace po = boost::program_options;

namespace wattprobe {

namespace {

po::options_description describe() {
  po::options_description d("wattprobe run options");
  // Everything is read as text and validated below, so a bad value's message names the option,
  // where it came from and the value, in one line.
  // clang-format off: one option per line reads as the table it is.
  d.add_options()("config", po::value<std::string>(),
                  "INI-style config file; command-line options win")(
      "listen", po::value<std::vector<std::string>>(),
      "address:port or [v6]:port for /metrics and /healthz (default 127.0.0.1:9887); "
      "repeatable, one address each")(
      "web-config-file", po::value<std::string>(),
      "TLS and basic auth for /metrics, in Prometheus' exporter-toolkit web config format")(
      "interval", po::value<std::string>(), "tick length, 100ms to 60s (default 1s)")(
      "sysfs-root", po::value<std::string>(), "folder holding sys/ (default /)")(
      "procfs-root", po::value<std::string>(), "folder holding proc/ (default /)")(
      "dev-root", po::value<std::string>(), "folder holding dev/ (default /)")(
      "pods-log-root", po::value<std::string>(), "folder holding var/log/pods (default /)")(
      "sources", po::value<std::string>(), ("auto, or a comma list of: " + source_names()).c_str())(
      "nvml-library", po::value<std::string>(),
      "NVML library the nvml source loads (default libnvidia-ml.so.1, from the loader's path)")(
      "redfish-url", po::value<std::string>(),
      "redfish: the BMC's URL, https://HOST[:PORT] (http:// is warned of)")(
      "redfish-user-file", po::value<std::string>(),
      "redfish: file holding the BMC user (also $CREDENTIALS_DIRECTORY/NAME)")(
      "redfish-password-file", po::value<std::string>(),
      "redfish: file holding the BMC password (also $CREDENTIALS_DIRECTORY/NAME)")(
      "redfish-ca-file", po::value<std::string>(),
      "redfish: CA bundle (PEM) that signed the BMC's certificate (default: the system store)")(
      "redfish-insecure-skip-verify", po::value<std::string>()->implicit_value("true"),
      "redfish: do not check the BMC's certificate (warned at every start)")(
      "redfish-chassis", po::value<std::string>(),
      "redfish: the chassis Id to read (default: the one chassis with power data)")(
      "redfish-interval", po::value<std::string>(),
      "redfish: how often the BMC is read, 1s to 10m (default 10s)")(
      "redfish-timeout", po::value<std::string>(),
      "redfish: how long one answer may take, 1s to 60s (default 5s)")(
      "ipmi-host", po::value<std::string>(),
      "ipmi: read the BMC over the LAN (IPMI 2.0, HOST[:PORT]) instead of /dev/ipmi0")(
      "ipmi-user-file", po::value<std::string>(),
      "ipmi: file holding the BMC user (also $CREDENTIALS_DIRECTORY/NAME)")(
      "ipmi-password-file", po::value<std::string>(),
      "ipmi: file holding the BMC password (also $CREDENTIALS_DIRECTORY/NAME)")(
      "ipmi-workarounds", po::value<std::string>(),
      "ipmi: FreeIPMI's IPMI 2.0 workarounds for a BMC that needs them, e.g. opensesspriv")(
      "accounting", po::value<std::string>(),
      "auto, cgroup, bpf or procfs (default auto: cgroup, else bpf, else procfs; bpf first "
      "with --process-metrics-top)")(
      "state-dir", po::value<std::string>(),
      "folder for checkpoints, ledger and queues (default /var/lib/wattprobe)")(
      "checkpoint-interval", po::value<std::string>(),
      "how often totals are written to state-dir, 1s to 1h (default 30s; also at stop)")(
      "idle-attribution", po::value<std::string>(),
      "separate, proportional or even (default separate)")(
      "idle-watts", po::value<std::vector<std::string>>(),
      "DOMAIN=W idle power per socket, overriding the learned estimate (repeatable)")(
      "split-by", po::value<std::string>(),
      "auto, cpu-time or cycles (default auto: cycles where counted)")(
      "process-metrics-top", po::value<std::string>(),
      "export the top N processes by energy (default 0: off)")(
      "max-workloads", po::value<std::string>(), "cap on tracked workloads (default 5000)")(
      "workload-expiry", po::value<std::string>(),
      "drop a workload's series after it is gone this long (default 5m)")(
      "user", po::value<std::string>(),
      "user (name or uid) to run as after start-up; default, started as root: wattprobe if that "
      "account exists, else nobody; root stays root")(
      "max-ticks", po::value<std::string>(), "stop after N ticks (default 0: run until SIGTERM)")(
      "grid-provider", po::value<std::string>(),
      (grid_provider_names() + " (default static)").c_str())(
      "grid-intensity", po::value<std::string>(),
      "static grid intensity and last fallback, gCO2e/kWh (default 475, the world average)")(
      "grid-zone", po::value<std::string>(),
      "grid zone or region (Electricity Maps zone, WattTime region; a label for static)")(
      "grid-file", po::value<std::string>(),
      "CSV or JSON schedule of intensities for --grid-provider=file")(
      "grid-url", po::value<std::string>(),
      "base URL of the grid API (default: the provider's public API)")(
      "grid-token-file", po::value<std::string>(), "file holding the grid API key or password")(
      "grid-token-env", po::value<std::string>(),
      "environment variable holding the grid API key (default WATTPROBE_GRID_TOKEN)")(
      "grid-username", po::value<std::string>(), "WattTime user name")(
      "grid-refresh", po::value<std::string>(),
      "how often to ask the grid API, 1s to 24h (default 15m; the file provider looks for edits "
      "every 10s)")("grid-max-age", po::value<std::string>(),
                    "use the static --grid-intensity when no good answer came for this long, 1s to "
                    "30d (default 24h)")(
      "pue", po::value<std::string>(),
      "power usage effectiveness of the facility, 1.0 to 3.0 (default 1.0)")(
      "best-window", po::value<std::string>(),
      "window sizes (whole minutes, comma-separated: 1h,4h) for the best-window gauges "
      "(default none)")("embodied-kg", po::value<std::string>(),
                        "embodied kgCO2e of this device, replacing the inventory estimate")(
      "install-date", po::value<std::string>(), "YYYY-MM-DD the device entered service")(
      "lifetime-years", po::value<std::string>(),
      "expected service life for amortization (default 4)")(
      "carbon-budget", po::value<std::vector<std::string>>(),
      "WORKLOAD=GRAMS/day|30d or kind:KIND=GRAMS/day|30d (repeatable)")(
      "remote-write-url", po::value<std::string>(),
      "push every tick's series to this Prometheus remote-write endpoint")(
      "remote-write-bearer-token-file", po::value<std::string>(),
      "file holding a bearer token for remote-write")(
      "remote-write-username", po::value<std::string>(), "basic-auth user for remote-write")(
      "remote-write-password-file", po::value<std::string>(),
      "file holding the basic-auth password")("remote-write-header",
                                              po::value<std::vector<std::string>>(),
                                              "NAME=VALUE extra HTTP header (repeatable)")(
      "remote-write-header-file", po::value<std::vector<std::string>>(),
      "NAME=FILE extra HTTP header whose secret value is read from FILE (repeatable)")(
      "remote-write-queue-bytes", po::value<std::string>(),
      "bound of the on-disk queue (default 67108864)")(
      "remote-write-label", po::value<std::vector<std::string>>(),
      "NAME=VALUE added to every pushed series (repeatable; default instance=<hostname>, instance= "
      "for none)")("remote-write-ca-file", po::value<std::string>(),
                   "extra CA bundle (PEM) to verify an https endpoint (default: the system store)")(
      "remote-write-batch-interval", po::value<std::string>(),
      "send what is queued this often, 10ms to 60s (default 1s)")(
      "remote-write-max-samples-per-request", po::value<std::string>(),
      "samples per request, 1 to 1000000 (default 2000)")(
      "remote-write-timeout", po::value<std::string>(),
      "give up on a request after this long, 10ms to 5m (default 30s)")(
      "remote-write-connect-timeout", po::value<std::string>(),
      "give up connecting after this long, 10ms to 5m (default 5s)")(
      "remote-write-backoff-min", po::value<std::string>(),
      "first retry delay after a failure, doubling per failure (default 500ms)")(
      "remote-write-backoff-max", po::value<std::string>(), "longest retry delay (default 30s)")(
      "remote-write-flush-timeout", po::value<std::string>(),
      "at stop, keep sending this long; the rest waits on disk (default 2s)")(
      "otlp-endpoint", po::value<std::string>(),
      "push every tick's series over OTLP/HTTP to <URL>/v1/metrics (e.g. http://collector:4318)")(
      "otlp-header", po::value<std::vector<std::string>>(),
      "NAME=VALUE extra HTTP header for OTLP (repeatable)")(
      "otlp-header-file", po::value<std::vector<std::string>>(),
      "NAME=FILE header whose value (a secret) is read from FILE before each request (repeatable)")(
      "otlp-compression", po::value<std::string>(), "gzip or none (default gzip)")(
      "otlp-ca-file", po::value<std::string>(),
      "extra CA bundle (PEM) to verify an https endpoint (default: the system store)")(
      "otlp-timeout", po::value<std::string>(),
      "give up on a request after this long, 10ms to 5m (default 10s)")(
      "otlp-backoff-min", po::value<std::string>(),
      "first retry delay after a failure, doubling per failure (default 500ms)")(
      "otlp-backoff-max", po::value<std::string>(), "longest retry delay (default 30s)")(
      "otlp-resource-attribute", po::value<std::vector<std::string>>(),
      "NAME=VALUE added to the OTLP resource (repeatable; replaces a default of that name)")(
      "ledger-retention", po::value<std::string>(),
      "delete ledger day files older than this many days (default 400; 0 keeps all)")(
      "ledger-max-bytes", po::value<std::string>(),
      "delete the oldest closed ledger day files past this many bytes in all, 1 MiB to 1 TiB "
      "(default 1073741824 = 1 GiB; 0 no cap)")(
      "job-records-max-bytes", po::value<std::string>(),
      "bound of the ended workloads' (batch jobs') records in state-dir/jobs, 1 MiB to 1 TiB "
      "(default 67108864 = 64 MiB; 0 no cap)")(
      "unit-window", po::value<std::string>(),
      "window the per-unit energy and CO2e divide ([unit.NAME] sections), 10s to 1h "
      "(default 60s)")(
      "ledger-period", po::value<std::string>(),
      "period each ledger line sums, dividing a day, 1s to 1h (default 1m; shorter for tests)")(
      "guest-energy-dir", po::value<std::string>(),
      "host: keep DIR/<vm>/energy.json with each VM's energy, for its guest's host source")(
      "host-energy-path", po::value<std::string>(),
      "guest: the VM's folder from the host's --guest-energy-dir, read by the host source")(
      "source.model.min_watts_per_vcpu", po::value<std::string>(),
      "model: W per vCPU at 0 % (default 0.74)")("source.model.max_watts_per_vcpu",
                                                 po::value<std::string>(),
                                                 "model: W per vCPU at 100 % (default 3.5)")(
      "source.model.board_idle_watts", po::value<std::string>(),
      "model: a sensorless board's W at 0 % CPU (with board_max_watts: a board estimate)")(
      "source.model.board_max_watts", po::value<std::string>(),
      "model: a sensorless board's W at 100 % CPU");
  // clang-format on
  return d;
}

/// A secret holding CR, LF or NUL would add headers to the requests it is sent in: refuse it
/// before anything starts, naming the file or variable, never the value. Readers check again
/// each time they read, so a file changed later cannot slip one in either.
void check_secrets(const Options& o) {
  const std::pair<const char*, const std::string*> files[] = {
      {"remote-write-bearer-token-file", &o.remote_write.bearer_token_file},
      {"remote-write-password-file", &o.remote_write.password_file},
      {"grid-token-file", &o.carbon.token_file},
  };
  for (const auto& [option, path] : files) {
    if (path->empty()) continue;
    if (auto ok = check_secret_file(*path); !ok)
      throw UsageError("invalid --" + std::string(option) + ": " + ok.error().message());
  }
  for (const auto& [name, path] : o.remote_write.header_files) {
    if (auto ok = check_secret_file(path); !ok)
      throw UsageError("invalid --remote-write-header-file " + name + ": " + ok.error().message());
  }
  const std::string& env = o.carbon.token_env;
  if (const char* v = env.empty() ? nullptr : std::getenv(env.c_str()); v && !trim(v).empty()) {
    if (auto ok = secret_from_text(v, "$" + env); !ok)
      throw UsageError("invalid --grid-token-env: " + ok.error().message());
  }
}

struct Raw {
  std::string value;
  std::string origin;  // "command line" or "config file X"
};

[[noreturn]] void bad(const std::string& option, const Raw& raw, const std::string& why) {
  throw UsageError("invalid value " + std::string("\"") + raw.value + "\" for --" + option + " (" +
                   raw.origin + "): " + why);
}

// A secret file's path, `$CREDENTIALS_DIRECTORY/NAME` naming a systemd credential.
std::string secret_path(const std::string& option, const Raw& raw) {
  if (raw.value.empty()) bad(option, raw, "expected a file");
  auto path = expand_credentials_directory(raw.value);
  if (!path) bad(option, raw, path.error().detail);
  return *path;
}

uint64_t to_u64(const std::string& option, const Raw& raw, uint64_t lo, uint64_t hi) {
  const std::string& v = raw.value;
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos) {
    bad(option, raw, "expected a whole number");
  }
  uint64_t n = std::stoull(v);
  if (n < lo || n > hi) {
    bad(option, raw, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
  }
  return n;
}

double to_double(const std::string& option, const Raw& raw, double lo, double hi) {
  std::size_t used = 0;
  double d = 0;
  try {
    d = std::stod(raw.value, &used);
  } catch (const std::exception&) {
    bad(option, raw, "expected a number");
  }
  if (used != raw.value.size() || !std::isfinite(d)) bad(option, raw, "expected a number");
  if (d < lo || d > hi) {
    std::ostringstream os;
    os << "expected " << lo << " to " << hi;
    bad(option, raw, os.str());
  }
  return d;
}

std::chrono::milliseconds to_duration(const std::string& option, const Raw& raw,
                                      std::chrono::milliseconds lo, std::chrono::milliseconds hi) {
  auto d = parse_duration(raw.value);
  if (!d) bad(option, raw, "expected a duration such as 500ms, 1s, 5m");
  if (*d < lo || *d > hi) {
    bad(option, raw, "expected " + format_duration(lo) + " to " + format_duration(hi));
  }
  return *d;
}

std::filesystem::path to_folder(const std::string& option, const Raw& raw) {
  if (raw.value.empty()) bad(option, raw, "expected a folder");
  std::error_code ec;
  if (!std::filesystem::is_directory(raw.value, ec)) bad(option, raw, "no such folder");
  return raw.value;
}

struct ConfigEntry {
  std::string name;  // "section.key" inside a [section]
  std::string value;
  std::string origin;  // "config file X line N"
};

/// Reads the --config file with Boost's INI syntax (`key = value`, `[section]` prefixing its keys
/// as `section.key`, `#` to the end of the line a comment), but parsed here, because Boost's
/// parser reports an error without the line it is on. Every error names the file and the line.
std::vector<ConfigEntry> read_config_file(const std::string& file,
                                          const po::options_description& desc,
                                          std::vector<ConfigEntry>* unit_keys) {
  auto text = read_text(file, 1 << 20);
  if (!text.ok()) {
    throw UsageError("cannot read config file " + file + ": " + text.error().detail);
  }
  std::vector<ConfigEntry> out;
  std::map<std::string, std::size_t> first_line;  // of each single-valued key
  std::string prefix;
  std::size_t number = 0;
  std::string_view rest(*text);
  while (!rest.empty()) {
    ++number;
    auto nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    const std::string where = "config file " + file + " line " + std::to_string(number);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    if (line.front() == '[') {
      std::string_view section = line.back() == ']' ? trim(line.substr(1, line.size() - 2)) : "";
      if (section.empty() || section.find_first_of("[]= \t") != std::string_view::npos) {
        throw UsageError(where + ": malformed section header " + quote_for_error(line) +
                         ", expected [name]");
      }
      prefix = std::string(section) + (section.back() == '.' ? "" : ".");
      continue;
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos) {
      throw UsageError(where + ": malformed line " + quote_for_error(line) +
                       ", expected key = value");
    }
    std::string_view key = trim(line.substr(0, eq));
    if (key.empty()) throw UsageError(where + ": no option name before \"=\"");
    std::string name = prefix + std::string(key);
    if (name.starts_with("unit.")) {
      // [unit.NAME] sections are named by the user: their keys are checked by read_units().
      unit_keys->push_back({std::move(name), std::string(trim(line.substr(eq + 1))), where});
      continue;
    }
    const po::option_description* known = desc.find_nothrow(name, /*approx=*/false);
    if (!known) throw UsageError(where + ": unknown option " + quote_for_error(name));
    if (name == "config") throw UsageError(where + ": config cannot name another config file");
    bool repeatable = dynamic_cast<const po::typed_value<std::vector<std::string>>*>(
                          known->semantic().get()) != nullptr;
    if (!repeatable) {
      auto [it, fresh] = first_line.emplace(name, number);
      if (!fresh) {
        throw UsageError(where + ": " + name + " is already set on line " +
                         std::to_string(it->second) + " (only repeatable options may repeat)");
      }
    }
    out.push_back({std::move(name), std::string(trim(line.substr(eq + 1))), where});
  }
  return out;
}

bool is_metric_name(std::string_view s) {
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s.front()))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
  });
}

bool is_label_name(std::string_view s) {
  return is_metric_name(s) && s.find(':') == std::string_view::npos;
}

/// The [unit.NAME] sections: `url`, `counter`, `workload` once each, `match` repeatable. Each
/// error names the file, the line and the key.
std::vector<UnitSpec> read_units(const std::vector<ConfigEntry>& keys) {
  std::vector<UnitSpec> units;
  std::map<std::string, std::size_t> index;
  std::map<std::string, std::string> first;  // "unit.key" -> where it was set
  for (const ConfigEntry& e : keys) {
    const std::string rest = e.name.substr(5);  // after "unit."
    const auto dot = rest.rfind('.');
    const std::string unit = dot == std::string::npos ? "" : rest.substr(0, dot);
    const std::string key = dot == std::string::npos ? rest : rest.substr(dot + 1);
    if (unit.empty() || unit.size() > 64 ||
        unit.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
            std::string::npos) {
      throw UsageError(e.origin + ": malformed unit section " + quote_for_error("unit." + unit) +
                       ", expected [unit.NAME] with NAME of letters, digits, _ and -");
    }
    auto [it, fresh] = index.emplace(unit, units.size());
    if (fresh) {
      units.push_back({});
      units.back().name = unit;
      units.back().origin = e.origin.substr(0, e.origin.rfind(" line ")) + " [unit." + unit + "]";
    }
    UnitSpec& u = units[it->second];
    const std::string where = e.origin + ": [unit." + unit + "] " + key;
    auto once = [&](std::string* field) {
      auto [at, is_new] = first.emplace(unit + "." + key, e.origin);
      if (!is_new) throw UsageError(where + " is already set (" + at->second + ")");
      *field = e.value;
    };
    if (key == "url") {
      once(&u.url);
      const bool web = u.url.starts_with("http://") || u.url.starts_with("https://");
      if (!web && !u.url.starts_with("/"))
        throw UsageError(where + ": " + quote_for_error(u.url) +
                         " is neither an http(s):// URL nor an absolute file path");
      if (web && url_has_credentials(u.url))
        throw UsageError(where +
                         ": credentials in the URL; the endpoint must be readable "
                         "without them");
    } else if (key == "counter") {
      once(&u.counter);
      if (!is_metric_name(u.counter))
        throw UsageError(where + ": " + quote_for_error(u.counter) + " is not a metric name");
    } else if (key == "workload") {
      once(&u.workload);
      if (u.workload.empty()) throw UsageError(where + ": expected a workload name or glob");
    } else if (key == "match") {
      const auto eq = e.value.find('=');
      const std::string label = eq == std::string::npos ? "" : e.value.substr(0, eq);
      if (!is_label_name(label))
        throw UsageError(where + ": " + quote_for_error(e.value) + ", expected label=value");
      u.match.emplace_back(label, e.value.substr(eq + 1));
    } else {
      throw UsageError(where + ": unknown key (expected url, counter, workload or match)");
    }
  }
  for (const UnitSpec& u : units) {
    for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"url", &u.url},
                                     {"counter", &u.counter},
                                     {"workload", &u.workload}}) {
      if (value->empty()) throw UsageError(u.origin + ": " + key + " is missing");
    }
  }
  return units;
}

}  // namespace

po::variables_map parse_own_options(const std::vector<std::string>& args,
                                    const po::options_description& own,
                                    std::vector<std::string>* rest) {
  po::variables_map vm;
  try {
    po::parsed_options parsed =
        po::command_line_parser(args).options(own).allow_unregistered().run();
    po::store(parsed, vm);
    *rest = po::collect_unrecognized(parsed.options, po::include_positional);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (command line)");
  }
  return vm;
}

std::string run_options_help() {
  std::ostringstream os;
  os << describe();
  return os.str();
}

/// Warnings, never refusals, about secrets where others can read them (issue 25): a secret in
/// a URL's query (it reaches proxy and server logs), and a config file that holds a secret but
/// that every user can read.
void warn_about_secrets(std::map<std::string, std::vector<Raw>>& values,
                        const std::string& config_file) {
  std::vector<std::string> in_config;
  auto from_config = [](const Raw& r) { return r.origin.starts_with("config file"); };
  for (const char* option : {"grid-url", "remote-write-url", "otlp-endpoint"}) {
    if (!values.count(option)) continue;
    const Raw& r = values[option].front();
    const std::string param = secret_query_parameter(r.value);
    if (!param.empty()) {
      log_line("warning: --" + std::string(option) + " carries what looks like a secret in its " +
               "query (" + param + "=): a query reaches proxy and server access logs; give it " +
               "as a header or token file instead (README \"Security\")");
    }
    if (from_config(r) && (!param.empty() || url_has_credentials(r.value)))
      in_config.push_back("--" + std::string(option));
  }
  for (const char* option : {"remote-write-header", "otlp-header"}) {
    if (!values.count(option)) continue;
    for (const Raw& r : values[option]) {
      if (from_config(r) && is_credential_header(r.value.substr(0, r.value.find('='))))
        in_config.push_back("--" + std::string(option) + " " +
                            r.value.substr(0, r.value.find('=')));
    }
  }
  struct stat st {};
  if (in_config.empty() || config_file.empty() || ::stat(config_file.c_str(), &st) != 0) return;
  if ((st.st_mode & S_IROTH) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  log_line("warning: config file " + config_file + " holds a secret (" + join(in_config, ", ") +
           ") and every user can read it (mode " + mode + "): chmod 0640 " + config_file +
           " (the package installs it so), or move the secret to a file of its own");
}

Options parse_run_options(const std::vector<std::string>& args) {
  po::options_description desc = describe();
  po::variables_map cli;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), cli);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (command line)");
  }

  std::map<std::string, std::vector<Raw>> values;
  for (const auto& [name, v] : cli) {
    if (v.value().type() == typeid(std::vector<std::string>)) {
      for (const auto& s : v.as<std::vector<std::string>>())
        values[name].push_back({s, "command line"});
    } else {
      values[name].push_back({v.as<std::string>(), "command line"});
    }
  }

  Options o;
  if (cli.count("config")) {
    o.config_file = cli["config"].as<std::string>();
    std::vector<ConfigEntry> unit_keys;
    for (ConfigEntry& e : read_config_file(o.config_file, desc, &unit_keys)) {
      if (values.count(e.name) && values[e.name].front().origin == "command line") {
        continue;  // the command line wins
      }
      values[e.name].push_back({std::move(e.value), std::move(e.origin)});
    }
    o.units.units = read_units(unit_keys);
  }

  auto one = [&](const std::string& name) -> const Raw* {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second.back();
  };

  if (auto it = values.find("listen"); it != values.end()) {
    o.listen.clear();
    for (const Raw& r : it->second) {
      auto split = split_listen_address(r.value);
      if (!split) bad("listen", r, split.error().detail);
      o.listen.push_back(r.value);
    }
  }
  if (auto r = one("web-config-file")) {
    auto web = read_web_config(r->value);
    if (!web) throw UsageError("invalid --web-config-file: " + web.error().message());
    o.web_config_file = r->value;
    o.web = std::move(*web);
  }
  if (auto r = one("interval")) {
    o.interval =
        to_duration("interval", *r, std::chrono::milliseconds(100), std::chrono::seconds(60));
  }
  if (auto r = one("sysfs-root")) o.paths.sysfs_root = to_folder("sysfs-root", *r);
  if (auto r = one("procfs-root")) o.paths.procfs_root = to_folder("procfs-root", *r);
  if (auto r = one("dev-root")) o.paths.dev_root = to_folder("dev-root", *r);
  if (auto r = one("pods-log-root")) o.paths.pods_log_root = to_folder("pods-log-root", *r);
  if (auto r = one("nvml-library")) {
    if (r->value.empty()) bad("nvml-library", *r, "expected a library path or name");
    o.nvml_library = r->value;
  }
  if (auto r = one("redfish-url")) {
    if (r->value.empty()) bad("redfish-url", *r, "expected https://HOST[:PORT]");
    if (url_has_credentials(r->value))
      // Not bad(): it repeats the value, and this one holds a password.
      throw UsageError("invalid --redfish-url (" + r->origin +
                       "): credentials in the URL; give them with --redfish-user-file and "
                       "--redfish-password-file");
    o.redfish.url = r->value;
  }
  if (auto r = one("redfish-user-file")) o.redfish.user_file = secret_path("redfish-user-file", *r);
  if (auto r = one("redfish-password-file"))
    o.redfish.password_file = secret_path("redfish-password-file", *r);
  if (auto r = one("redfish-ca-file")) {
    if (r->value.empty()) bad("redfish-ca-file", *r, "expected a PEM file");
    o.redfish.ca_file = r->value;
  }
  if (auto r = one("redfish-insecure-skip-verify")) {
    if (r->value != "true" && r->value != "false")
      bad("redfish-insecure-skip-verify", *r, "expected true or false");
    o.redfish.insecure_skip_verify = r->value == "true";
  }
  if (auto r = one("redfish-chassis")) {
    if (r->value.empty()) bad("redfish-chassis", *r, "expected a chassis Id");
    o.redfish.chassis = r->value;
  }
  if (auto r = one("redfish-interval"))
    o.redfish.interval =
        to_duration("redfish-interval", *r, std::chrono::seconds(1), std::chrono::minutes(10));
  if (auto r = one("redfish-timeout"))
    o.redfish.timeout =
        to_duration("redfish-timeout", *r, std::chrono::seconds(1), std::chrono::seconds(60));
  if (auto r = one("ipmi-host")) {
    if (r->value.empty() || r->value.find_first_of("/@ ") != std::string::npos)
      bad("ipmi-host", *r, "expected HOST or HOST:PORT");
    o.ipmi.host = r->value;
  }
  if (auto r = one("ipmi-user-file")) o.ipmi.user_file = secret_path("ipmi-user-file", *r);
  if (auto r = one("ipmi-password-file"))
    o.ipmi.password_file = secret_path("ipmi-password-file", *r);
  if (auto r = one("ipmi-workarounds")) {
    auto flags = parse_ipmi_workarounds(r->value);
    if (!flags) bad("ipmi-workarounds", *r, flags.error().detail);
    o.ipmi.workaround_flags = *flags;
  }
  if (!o.ipmi.host.empty() && (o.ipmi.user_file.empty() || o.ipmi.password_file.empty()))
    throw UsageError(
        "--ipmi-host needs --ipmi-user-file and --ipmi-password-file (a BMC account "
        "with the User privilege)");
  if (o.ipmi.host.empty() &&
      (!o.ipmi.user_file.empty() || !o.ipmi.password_file.empty() || o.ipmi.workaround_flags != 0))
    throw UsageError(
        "--ipmi-user-file, --ipmi-password-file and --ipmi-workarounds need --ipmi-host");
  if (!o.ipmi.user_file.empty()) {
    for (const std::string* f : {&o.ipmi.user_file, &o.ipmi.password_file}) {
      if (auto ok = check_secret_file(*f); !ok)
        throw UsageError("invalid ipmi credential file: " + ok.error().message());
    }
  }
  if (!o.redfish.url.empty() && (o.redfish.user_file.empty() || o.redfish.password_file.empty()))
    throw UsageError(
        "--redfish-url needs --redfish-user-file and --redfish-password-file (a read-only BMC "
        "account)");
  if (!o.redfish.user_file.empty()) {
    for (const std::string* f : {&o.redfish.user_file, &o.redfish.password_file}) {
      if (auto ok = check_secret_file(*f); !ok)
        throw UsageError("invalid redfish credential file: " + ok.error().message());
    }
  }
  if (auto r = one("sources")) {
    if (r->value != "auto") {
      std::stringstream ss(r->value);
      std::string s;
      std::set<std::string> seen;
      while (std::getline(ss, s, ',')) {
        if (!find_source(s)) {
          bad("sources", *r, "unknown source \"" + s + "\" (known: " + source_names(", ") + ")");
        }
        if (!seen.insert(s).second) bad("sources", *r, "source \"" + s + "\" named twice");
        o.sources.push_back(s);
      }
      if (o.sources.empty()) bad("sources", *r, "expected auto or a list of sources");
    }
  }
  if (auto r = one("accounting")) {
    if (r->value != "auto" && r->value != "cgroup" && r->value != "bpf" && r->value != "procfs") {
      bad("accounting", *r, "expected auto, cgroup, bpf or procfs");
    }
    o.accounting = r->value;
  }
  if (auto r = one("state-dir")) {
    if (r->value.empty()) bad("state-dir", *r, "expected a folder");
    o.state_dir = r->value;
  }
  if (auto r = one("checkpoint-interval")) {
    o.checkpoint_interval =
        to_duration("checkpoint-interval", *r, std::chrono::seconds(1), std::chrono::hours(1));
  }
  if (auto r = one("idle-attribution")) {
    if (r->value == "separate") {
      o.attribution.idle_policy = IdlePolicy::separate;
    } else if (r->value == "proportional") {
      o.attribution.idle_policy = IdlePolicy::proportional;
    } else if (r->value == "even") {
      o.attribution.idle_policy = IdlePolicy::even;
    } else {
      bad("idle-attribution", *r, "expected separate, proportional or even");
    }
  }
  if (values.count("idle-watts")) {
    static const std::set<std::string> domains{"package", "core", "uncore",  "dram",
                                               "psys",    "gpu",  "platform"};
    for (const Raw& r : values["idle-watts"]) {
      auto eq = r.value.find('=');
      if (eq == std::string::npos) bad("idle-watts", r, "expected DOMAIN=WATTS");
      std::string domain = r.value.substr(0, eq);
      if (!domains.count(domain)) bad("idle-watts", r, "unknown domain \"" + domain + "\"");
      o.attribution.idle_watts[domain] =
          to_double("idle-watts", Raw{r.value.substr(eq + 1), r.origin}, 0, 100000);
    }
  }
  if (auto r = one("split-by")) {
    if (r->value == "auto") {
      o.attribution.split_by = SplitKey::automatic;
    } else if (r->value == "cpu-time") {
      o.attribution.split_by = SplitKey::cpu_time;
    } else if (r->value == "cycles") {
      o.attribution.split_by = SplitKey::cycles;
    } else {
      bad("split-by", *r, "expected auto, cpu-time or cycles");
    }
  }
  if (auto r = one("process-metrics-top")) {
    o.process_metrics_top = to_u64("process-metrics-top", *r, 0, 1000);
    if (o.process_metrics_top > 0 && o.accounting == "cgroup")
      bad("process-metrics-top", *r,
          "--accounting cgroup has no per-process records; use --accounting auto or bpf");
  }
  o.attribution.process_metrics_top = o.process_metrics_top;
  if (auto r = one("max-workloads")) o.max_workloads = to_u64("max-workloads", *r, 1, 1000000);
  if (auto r = one("workload-expiry")) {
    o.attribution.workload_expiry =
        to_duration("workload-expiry", *r, std::chrono::seconds(1), std::chrono::hours(24 * 30));
  }
  if (auto r = one("user")) {
    if (r->value.empty()) bad("user", *r, "expected a user name or uid");
    o.user = r->value;
  }
  if (auto r = one("max-ticks")) o.max_ticks = to_u64("max-ticks", *r, 0, UINT64_MAX >> 8);
  if (auto r = one("source.model.min_watts_per_vcpu")) {
    o.model.min_watts_per_vcpu = to_double("source.model.min_watts_per_vcpu", *r, 0, 1000);
  }
  if (auto r = one("source.model.max_watts_per_vcpu")) {
    o.model.max_watts_per_vcpu = to_double("source.model.max_watts_per_vcpu", *r, 0, 1000);
  }
  if (auto r = one("source.model.board_idle_watts")) {
    o.model.board_idle_watts = to_double("source.model.board_idle_watts", *r, 0, 10000);
  }
  if (auto r = one("source.model.board_max_watts")) {
    o.model.board_max_watts = to_double("source.model.board_max_watts", *r, 0, 10000);
  }
  if (o.model.board_idle_watts.has_value() != o.model.board_max_watts.has_value()) {
    throw UsageError(
        "invalid [source.model]: board_idle_watts and board_max_watts are set together");
  }
  if (o.model.board_idle_watts && *o.model.board_max_watts < *o.model.board_idle_watts) {
    throw UsageError("invalid [source.model]: board_max_watts (" +
                     std::to_string(*o.model.board_max_watts) + ") is below board_idle_watts (" +
                     std::to_string(*o.model.board_idle_watts) + ")");
  }
  CarbonOptions& c = o.carbon;
  if (auto r = one("grid-provider")) c.grid_provider = r->value;
  if (auto r = one("grid-intensity")) c.grid_intensity = to_double("grid-intensity", *r, 0, 5000);
  if (auto r = one("grid-zone")) c.zone = r->value;
  if (auto r = one("grid-file")) c.grid_file = r->value;
  // The host's intensity comes from the file the host source reads, unless told otherwise.
  if (auto r = one("host-energy-path"); r && c.grid_file.empty() && c.grid_provider == "host") {
    c.grid_file = r->value;
  }
  if (auto r = one("grid-url")) {
    c.grid_url = r->value;
    if (r->origin == "command line" && url_has_credentials(c.grid_url)) {
      log_line(
          "warning: --grid-url carries credentials on the command line, where every local user "
          "can read them; use --grid-token-file (or --grid-token-env) for the key");
    }
  }
  if (auto r = one("grid-token-file")) c.token_file = secret_path("grid-token-file", *r);
  if (auto r = one("grid-token-env")) c.token_env = r->value;
  if (auto r = one("grid-username")) c.watttime_username = r->value;
  if (auto r = one("grid-refresh")) {
    c.refresh_seconds =
        to_duration("grid-refresh", *r, std::chrono::seconds(1), std::chrono::hours(24)).count() /
        1000.0;
  }
  if (auto r = one("grid-max-age")) {
    c.max_age_seconds =
        to_duration("grid-max-age", *r, std::chrono::seconds(1), std::chrono::hours(24 * 30))
            .count() /
        1000.0;
  }
  if (auto r = one("pue")) c.pue = to_double("pue", *r, 1.0, 3.0);
  if (auto r = one("best-window")) {
    std::string_view rest = r->value;
    while (true) {
      const std::size_t comma = rest.find(',');
      Raw item{std::string(rest.substr(0, comma)), r->origin};
      auto d = to_duration("best-window", item, std::chrono::minutes(1), std::chrono::hours(168));
      if (d.count() % 60000 != 0) bad("best-window", item, "expected whole minutes");
      c.best_windows.push_back({item.value, d.count()});
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (auto r = one("embodied-kg")) c.embodied_kg = to_double("embodied-kg", *r, 0, 1e6);
  if (auto r = one("install-date")) c.install_date = r->value;
  if (auto r = one("lifetime-years")) c.lifetime_years = to_double("lifetime-years", *r, 0.1, 50);
  if (values.count("carbon-budget")) {
    for (const Raw& r : values["carbon-budget"]) {
      auto b = parse_budget(r.value);
      if (!b.ok()) bad("carbon-budget", r, b.error().detail);
      c.budgets.push_back(*b);
    }
  }
  for (const Result<bool>& valid : {validate_grid(c), validate(c)}) {
    if (!valid.ok()) throw UsageError("invalid carbon options: " + valid.error().message());
  }

  RemoteWriteOptions& rw = o.remote_write;
  if (auto r = one("remote-write-url")) {
    rw.url = r->value;
    // Any local user reads a process's arguments in /proc/PID/cmdline.
    if (r->origin == "command line" && url_has_credentials(rw.url)) {
      log_line(
          "warning: --remote-write-url carries credentials on the command line, where every "
          "local user can read them; use --remote-write-username with "
          "--remote-write-password-file, or --remote-write-bearer-token-file");
    }
  }
  if (auto r = one("remote-write-bearer-token-file"))
    rw.bearer_token_file = secret_path("remote-write-bearer-token-file", *r);
  if (auto r = one("remote-write-username")) rw.basic_auth_user = r->value;
  if (auto r = one("remote-write-password-file"))
    rw.password_file = secret_path("remote-write-password-file", *r);
  if (values.count("remote-write-header")) {
    for (const Raw& r : values["remote-write-header"]) {
      auto eq = r.value.find('=');
      if (eq == std::string::npos || eq == 0) bad("remote-write-header", r, "expected NAME=VALUE");
      rw.headers.emplace_back(r.value.substr(0, eq), r.value.substr(eq + 1));
      if (r.origin == "command line" && is_credential_header(rw.headers.back().first)) {
        log_line("warning: --remote-write-header " + rw.headers.back().first +
                 " looks like a credential and is on the command line, where every local user "
                 "can read it; use --remote-write-header-file " +
                 rw.headers.back().first +
                 "=FILE, or put it in the config file (readable by "
                 "the agent only)");
      }
    }
  }
  if (values.count("remote-write-header-file")) {
    for (const Raw& r : values["remote-write-header-file"]) {
      auto eq = r.value.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == r.value.size()) {
        bad("remote-write-header-file", r, "expected NAME=FILE");
      }
      rw.header_files.emplace_back(
          r.value.substr(0, eq),
          secret_path("remote-write-header-file", Raw{r.value.substr(eq + 1), r.origin}));
    }
  }
  if (values.count("remote-write-label")) {
    for (const Raw& r : values["remote-write-label"]) {
      auto eq = r.value.find('=');
      if (eq == std::string::npos || eq == 0) bad("remote-write-label", r, "expected NAME=VALUE");
      rw.labels.emplace_back(r.value.substr(0, eq), r.value.substr(eq + 1));
    }
  }
  // Pushed series have no scrape target to name the host, so by default they carry its name.
  if (std::none_of(rw.labels.begin(), rw.labels.end(),
                   [](const auto& l) { return l.first == "instance"; })) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') {
      rw.labels.emplace_back("instance", host);
    }
  }
  if (auto r = one("remote-write-queue-bytes")) {
    rw.queue_max_bytes = to_u64("remote-write-queue-bytes", *r, 1 << 16, uint64_t{1} << 40);
  }
  if (auto r = one("remote-write-ca-file")) {
    std::error_code ec;
    if (r->value.empty() || !std::filesystem::is_regular_file(r->value, ec)) {
      bad("remote-write-ca-file", *r, "no such file");
    }
    rw.ca_file = r->value;
  }
  using std::chrono::milliseconds;
  auto duration = [&](const char* option, milliseconds lo, milliseconds hi, milliseconds& out) {
    if (auto r = one(option)) out = to_duration(option, *r, lo, hi);
  };
  duration("remote-write-batch-interval", milliseconds(10), std::chrono::seconds(60),
           rw.batch_interval);
  if (auto r = one("remote-write-max-samples-per-request")) {
    rw.max_samples_per_request = to_u64("remote-write-max-samples-per-request", *r, 1, 1000000);
  }
  duration("remote-write-timeout", milliseconds(10), std::chrono::minutes(5), rw.request_timeout);
  duration("remote-write-connect-timeout", milliseconds(10), std::chrono::minutes(5),
           rw.connect_timeout);
  duration("remote-write-backoff-min", milliseconds(10), std::chrono::minutes(5), rw.backoff_min);
  duration("remote-write-backoff-max", milliseconds(10), std::chrono::hours(1), rw.backoff_max);
  duration("remote-write-flush-timeout", milliseconds(0), std::chrono::seconds(60),
           rw.stop_flush_timeout);
  rw.state_dir = o.state_dir;
  if (rw.url.empty()) {
    // Tuning a push that is off is almost always a misspelt or forgotten url.
    for (const auto& [name, raw] : values) {
      if (name.starts_with("remote-write-") && name != "remote-write-url") {
        bad(name, raw.back(), "needs --remote-write-url");
      }
    }
  }

  OtlpOptions& ot = o.otlp;
  if (auto r = one("otlp-endpoint")) {
    ot.endpoint = r->value;
    if (r->origin == "command line" && url_has_credentials(ot.endpoint)) {
      log_line(
          "warning: --otlp-endpoint carries credentials on the command line, where every local "
          "user can read them; use --otlp-header-file");
    }
  }
  auto name_value = [&](const char* option, NameValues& out) {
    if (!values.count(option)) return;
    for (const Raw& r : values[option]) {
      auto eq = r.value.find('=');
      if (eq == std::string::npos || eq == 0) bad(option, r, "expected NAME=VALUE");
      out.emplace_back(r.value.substr(0, eq), r.value.substr(eq + 1));
    }
  };
  name_value("otlp-header", ot.headers);
  if (values.count("otlp-header")) {
    for (std::size_t i = 0; i < ot.headers.size(); ++i) {
      if (values["otlp-header"][i].origin == "command line" &&
          is_credential_header(ot.headers[i].first)) {
        log_line("warning: --otlp-header " + ot.headers[i].first +
                 " looks like a credential and is on the command line, where every local user "
                 "can read it; use --otlp-header-file " +
                 ot.headers[i].first + "=FILE");
      }
    }
  }
  name_value("otlp-header-file", ot.header_files);
  for (const auto& [name, file] : ot.header_files) {
    if (auto ok = check_secret_file(file); !ok)
      throw UsageError("invalid --otlp-header-file " + name + ": " + ok.error().message());
  }
  if (auto r = one("otlp-compression")) {
    if (r->value != "gzip" && r->value != "none")
      bad("otlp-compression", *r, "expected gzip or none");
    ot.gzip = r->value == "gzip";
  }
  if (auto r = one("otlp-ca-file")) {
    std::error_code ec;
    if (r->value.empty() || !std::filesystem::is_regular_file(r->value, ec)) {
      bad("otlp-ca-file", *r, "no such file");
    }
    ot.ca_file = r->value;
  }
  duration("otlp-timeout", milliseconds(10), std::chrono::minutes(5), ot.request_timeout);
  duration("otlp-backoff-min", milliseconds(10), std::chrono::minutes(5), ot.backoff_min);
  duration("otlp-backoff-max", milliseconds(10), std::chrono::hours(1), ot.backoff_max);
  name_value("otlp-resource-attribute", ot.resource_attributes);
  ot.state_dir = o.state_dir;
  if (ot.endpoint.empty()) {
    for (const auto& [name, raw] : values) {
      if (name.starts_with("otlp-") && name != "otlp-endpoint")
        bad(name, raw.back(), "needs --otlp-endpoint");
    }
  } else if (auto valid = validate(ot); !valid.ok()) {
    throw UsageError("invalid OTLP options: " + valid.error().message());
  }

  o.ledger.state_dir = o.state_dir;
  if (auto r = one("ledger-retention")) {
    o.ledger.retention_days = static_cast<unsigned>(to_u64("ledger-retention", *r, 0, 100000));
  }
  if (auto r = one("ledger-max-bytes")) {
    o.ledger.max_bytes = to_u64("ledger-max-bytes", *r, 0, uint64_t{1} << 40);
    if (o.ledger.max_bytes != 0 && o.ledger.max_bytes < (1u << 20)) {
      bad("ledger-max-bytes", *r, "expected 0 (no cap) or 1048576 (1 MiB) and more");
    }
  }
  o.job_records.state_dir = o.state_dir;
  if (auto r = one("job-records-max-bytes")) {
    o.job_records.max_bytes = to_u64("job-records-max-bytes", *r, 0, uint64_t{1} << 40);
    if (o.job_records.max_bytes != 0 && o.job_records.max_bytes < (1u << 20))
      bad("job-records-max-bytes", *r, "expected 0 (no cap) or 1048576 (1 MiB) and more");
  }
  if (auto r = one("unit-window")) {
    o.units.window =
        to_duration("unit-window", *r, std::chrono::seconds(10), std::chrono::hours(1));
  }
  if (auto r = one("ledger-period")) {
    auto d = to_duration("ledger-period", *r, std::chrono::seconds(1), std::chrono::hours(1));
    // Whole seconds that divide a day keep every period inside one UTC day file.
    if (d.count() % 1000 != 0 || 86'400'000 % d.count() != 0) {
      bad("ledger-period", *r, "expected whole seconds that divide a day, such as 1s, 10s, 1m, 5m");
    }
    o.ledger.period = std::chrono::duration_cast<std::chrono::seconds>(d);
  }
  if (!rw.url.empty()) {
    if (auto valid = validate(rw); !valid.ok()) {
      throw UsageError("invalid remote-write options: " + valid.error().message());
    }
  }
  check_secrets(o);
  warn_about_secrets(values, o.config_file);
  // Before the privilege drop, which happens after parsing: a root-only secret stays readable.
  if (!rw.url.empty()) hold_secret_files(rw);
  if (!o.otlp.endpoint.empty()) hold_secret_files(o.otlp);

  // VM passthrough (docs/guest-energy.md): the host writes each VM's figures, the guest reads them.
  if (auto r = one("guest-energy-dir")) {
    if (r->value.empty()) bad("guest-energy-dir", *r, "expected a folder");
    o.guest_energy.dir = r->value;
    o.guest_energy.pue = c.pue;
    o.guest_energy.interval_seconds = static_cast<double>(o.interval.count()) / 1000.0;
    if (auto idle = one("idle-attribution")) o.guest_energy.idle_attribution = idle->value;
  }
  if (auto r = one("host-energy-path")) {
    if (r->value.empty())
      bad("host-energy-path", *r, "expected the VM's folder or its energy.json");
    o.host_energy_path = r->value;
  }

  if (o.model.max_watts_per_vcpu < o.model.min_watts_per_vcpu) {
    throw UsageError("invalid [source.model]: max_watts_per_vcpu (" +
                     std::to_string(o.model.max_watts_per_vcpu) +
                     ") is below min_watts_per_vcpu (" +
                     std::to_string(o.model.min_watts_per_vcpu) + ")");
  }
  return o;
}

}  // namespace wattprobe
