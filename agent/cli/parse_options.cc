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

OptionTable<HostPaths> host_path_option_table() {
  using H = HostPaths;
  return {
      folder_option("sysfs-root", &H::sysfs_root, "folder holding sys/"),
      folder_option("procfs-root", &H::procfs_root, "folder holding proc/"),
      folder_option("dev-root", &H::dev_root, "folder holding dev/"),
      folder_option("pods-log-root", &H::pods_log_root, "folder holding var/log/pods"),
  };
}

/// `wattprobe run`'s options: its own general ones here, each wing's from the table beside its
/// options struct, in the order --help lists them.
OptionTable<Options> make_run_option_table() {
  using O = Options;
  using std::chrono::seconds;
  OptionSpec<O> listen{
      "listen", "address:port or [v6]:port for /metrics and /healthz; repeatable, one address each",
      [](O& o, const std::vector<OptionValue>& values) {
        o.listen.clear();
        for (const OptionValue& v : values) {
          auto split = split_listen_address(v.value);
          if (!split) refuse_value(v, split.error().detail);
          o.listen.push_back(v.value);
        }
      },
      [](const O& o) { return join(o.listen, ", "); }, true};
  OptionSpec<O> web_config{
      "web-config-file",
      "TLS and basic auth for /metrics, in Prometheus' exporter-toolkit web config format",
      [](O& o, const std::vector<OptionValue>& v) {
        auto web = read_web_config(v.back().value);
        if (!web) throw UsageError("invalid --web-config-file: " + web.error().message());
        o.web_config_file = v.back().value;
        o.web = std::move(*web);
      },
      [](const O& o) { return o.web_config_file; }};
  OptionSpec<O> sources{
      "sources", "auto, or a comma list of: " + source_names(),
      [](O& o, const std::vector<OptionValue>& v) {
        const OptionValue& r = v.back();
        if (r.value == "auto") return;
        std::stringstream ss(r.value);
        std::string s;
        std::set<std::string> seen;
        while (std::getline(ss, s, ',')) {
          if (!find_source(s))
            refuse_value(r, "unknown source \"" + s + "\" (known: " + source_names(", ") + ")");
          if (!seen.insert(s).second) refuse_value(r, "source \"" + s + "\" named twice");
          o.sources.push_back(s);
        }
        if (o.sources.empty()) refuse_value(r, "expected auto or a list of sources");
      },
      [](const O& o) { return o.sources.empty() ? std::string("auto") : join(o.sources, ","); }};
  OptionSpec<O> max_ticks{"max-ticks", "stop after N ticks",
                          [](O& o, const std::vector<OptionValue>& v) {
                            o.max_ticks = whole_value(v.back(), 0, UINT64_MAX >> 8);
                          },
                          [](const O& o) { return std::to_string(o.max_ticks); }};
  max_ticks.default_note = ": run until SIGTERM";
  OptionTable<O> t{
      std::move(listen),
      std::move(web_config),
      duration_option("interval", &O::interval, std::chrono::milliseconds(100), seconds(60),
                      "tick length"),
  };
  append(t, nest(host_path_option_table(), &O::paths));
  append(t, OptionTable<O>{
                std::move(sources),
                text_option("nvml-library", &O::nvml_library,
                            "NVML library the nvml source loads (from the loader's path)",
                            "expected a library path or name"),
            });
  append(t, nest(redfish_option_table(), &O::redfish));
  append(t, nest(ipmi_option_table(), &O::ipmi));
  append(t,
         OptionTable<O>{
             choice_option(
                 "accounting", &O::accounting,
                 std::vector<Choice<std::string>>{
                     {"auto", "auto"}, {"cgroup", "cgroup"}, {"bpf", "bpf"}, {"procfs", "procfs"}},
                 "")
                 .note(": cgroup, else bpf, else procfs; bpf first with --process-metrics-top"),
             text_option("state-dir", &O::state_dir, "folder for checkpoints, ledger and queues",
                         "expected a folder"),
             duration_option("checkpoint-interval", &O::checkpoint_interval, seconds(1),
                             std::chrono::hours(1), "how often totals are written to state-dir")
                 .note("; also at stop"),
         });
  append(t, nest(attribution_option_table(), &O::attribution));
  append(t, OptionTable<O>{
                whole_option("process-metrics-top", &O::process_metrics_top, 0, 1000,
                             "export the top N processes by energy")
                    .note(": off"),
                whole_option("max-workloads", &O::max_workloads, 1, 1000000,
                             "cap on tracked workloads"),
                text_option("user", &O::user, "user (name or uid) to run as after start-up",
                            "expected a user name or uid")
                    .note(", started as root: wattprobe if that account exists, else nobody; "
                          "root stays root"),
                std::move(max_ticks),
            });
  append(t, nest(grid_option_table(), &O::carbon));
  append(t, nest(carbon_option_table(), &O::carbon));
  append(t, nest(remote_write_option_table(), &O::remote_write));
  append(t, nest(otlp_option_table(), &O::otlp));
  append(t, nest(ledger_option_table(), &O::ledger));
  append(t, nest(job_record_option_table(), &O::job_records));
  append(t, nest(unit_option_table(), &O::units));
  append(t, nest(guest_energy_option_table(), &O::guest_energy));
  append(t,
         OptionTable<O>{text_option(
             "host-energy-path", &O::host_energy_path,
             "guest: the VM's folder from the host's --guest-energy-dir, read by the host source",
             "expected the VM's folder or its energy.json")});
  append(t, nest(model_option_table(), &O::model));
  return t;
}

po::options_description describe(const OptionTable<Options>& table) {
  po::options_description d("wattprobe run options");
  // Everything is read as text and checked by the table, so a bad value's message names the
  // option, where it came from and the value, in one line.
  d.add_options()("config", po::value<std::string>(),
                  "INI-style config file; command-line options win");
  const Options defaults;
  for (const OptionSpec<Options>& s : table) {
    const po::value_semantic* value = nullptr;
    if (s.repeatable) {
      value = po::value<std::vector<std::string>>();
    } else if (!s.bare.empty()) {
      value = po::value<std::string>()->implicit_value(s.bare);
    } else {
      value = po::value<std::string>();
    }
    d.add_options()(s.name.c_str(), value, s.describe(defaults).c_str());
  }
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

struct ConfigEntry {
  std::string name;  // "section.key" inside a [section]
  std::string value;
  std::string origin;  // "config file X line N"
};

/// Reads the --config file with Boost's INI syntax (`key = value`, `[section]` prefixing its keys
/// as `section.key`, `#` to the end of the line a comment), but parsed here, because Boost's
/// parser reports an error without the line it is on. Every error names the file and the line.
std::vector<ConfigEntry> read_config_file(const std::string& file,
                                          const OptionTable<Options>& table,
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
    if (name == "config") throw UsageError(where + ": config cannot name another config file");
    auto known = std::find_if(table.begin(), table.end(),
                              [&](const OptionSpec<Options>& s) { return s.name == name; });
    if (known == table.end()) throw UsageError(where + ": unknown option " + quote_for_error(name));
    if (!known->repeatable) {
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
  os << describe(run_option_table());
  return os.str();
}

/// Warnings, never refusals, about secrets where others can read them (issue 25): a secret in
/// a URL's query (it reaches proxy and server logs), and a config file that holds a secret but
/// that every user can read.
void warn_about_secrets(std::map<std::string, std::vector<OptionValue>>& values,
                        const std::string& config_file) {
  std::vector<std::string> in_config;
  auto from_config = [](const OptionValue& r) { return r.origin.starts_with("config file"); };
  for (const char* option : {"grid-url", "remote-write-url", "otlp-endpoint"}) {
    if (!values.count(option)) continue;
    const OptionValue& r = values[option].front();
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
    for (const OptionValue& r : values[option]) {
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

const OptionTable<Options>& run_option_table() {
  static const OptionTable<Options> table = make_run_option_table();
  return table;
}

Options parse_run_options(const std::vector<std::string>& args) {
  const OptionTable<Options>& table = run_option_table();
  po::options_description desc = describe(table);
  po::variables_map cli;
  try {
    po::store(po::command_line_parser(args).options(desc).run(), cli);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (command line)");
  }

  std::map<std::string, std::vector<OptionValue>> values;
  for (const auto& [name, v] : cli) {
    if (v.value().type() == typeid(std::vector<std::string>)) {
      for (const auto& s : v.as<std::vector<std::string>>())
        values[name].push_back({name, s, "command line"});
    } else {
      values[name].push_back({name, v.as<std::string>(), "command line"});
    }
  }

  Options o;
  if (cli.count("config")) {
    o.config_file = cli["config"].as<std::string>();
    values.erase("config");
    std::vector<ConfigEntry> unit_keys;
    for (ConfigEntry& e : read_config_file(o.config_file, table, &unit_keys)) {
      if (values.count(e.name) && values[e.name].front().origin == "command line") {
        continue;  // the command line wins
      }
      values[e.name].push_back({e.name, std::move(e.value), std::move(e.origin)});
    }
    o.units.units = read_units(unit_keys);
  }

  for (const OptionSpec<Options>& spec : table) {
    if (auto it = values.find(spec.name); it != values.end()) spec.set(o, it->second);
  }

  // What no single option can check: options that go together, and what follows from others.
  auto one = [&](const std::string& name) -> const OptionValue* {
    auto it = values.find(name);
    return it == values.end() ? nullptr : &it->second.back();
  };
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
  if (o.process_metrics_top > 0 && o.accounting == "cgroup")
    refuse_value(*one("process-metrics-top"),
                 "--accounting cgroup has no per-process records; use --accounting auto or bpf");
  o.attribution.process_metrics_top = o.process_metrics_top;
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
  // The host's intensity comes from the file the host source reads, unless told otherwise.
  if (c.grid_file.empty() && c.grid_provider == "host") c.grid_file = o.host_energy_path;
  for (const Result<bool>& valid : {validate_grid(c), validate(c)}) {
    if (!valid.ok()) throw UsageError("invalid carbon options: " + valid.error().message());
  }

  RemoteWriteOptions& rw = o.remote_write;
  // Pushed series have no scrape target to name the host, so by default they carry its name.
  if (std::none_of(rw.labels.begin(), rw.labels.end(),
                   [](const auto& l) { return l.first == "instance"; })) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0 && host[0] != '\0') {
      rw.labels.emplace_back("instance", host);
    }
  }
  rw.state_dir = o.state_dir;
  if (rw.url.empty()) {
    // Tuning a push that is off is almost always a misspelt or forgotten url.
    for (const auto& [name, raw] : values) {
      if (name.starts_with("remote-write-") && name != "remote-write-url") {
        refuse_value(raw.back(), "needs --remote-write-url");
      }
    }
  }

  OtlpOptions& ot = o.otlp;
  for (const auto& [name, file] : ot.header_files) {
    if (auto ok = check_secret_file(file); !ok)
      throw UsageError("invalid --otlp-header-file " + name + ": " + ok.error().message());
  }
  ot.state_dir = o.state_dir;
  if (ot.endpoint.empty()) {
    for (const auto& [name, raw] : values) {
      if (name.starts_with("otlp-") && name != "otlp-endpoint")
        refuse_value(raw.back(), "needs --otlp-endpoint");
    }
  } else if (auto valid = validate(ot); !valid.ok()) {
    throw UsageError("invalid OTLP options: " + valid.error().message());
  }

  o.ledger.state_dir = o.state_dir;
  o.job_records.state_dir = o.state_dir;
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
  if (!o.guest_energy.dir.empty()) {
    o.guest_energy.pue = c.pue;
    o.guest_energy.interval_seconds = static_cast<double>(o.interval.count()) / 1000.0;
    o.guest_energy.idle_attribution = word_of(idle_policies(), o.attribution.idle_policy);
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
