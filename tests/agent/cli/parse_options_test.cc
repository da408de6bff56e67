// `wattprobe run`'s options as a user meets them: defaults when nothing is given, the command line
// over the config file, and every refusal naming the option, where it came from and the value.

#include "agent/cli/parse_options.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::TempTree;
using namespace std::chrono_literals;

std::string refusal(const std::vector<std::string>& args) {
  try {
    parse_run_options(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

std::string config_file(const TempTree& tree, const std::string& text) {
  const std::string path = (tree.root() / "wattprobe.conf").string();
  std::ofstream(path) << text;
  return path;
}

TEST(ParseOptions, NothingGivenIsTheDocumentedDefaults) {
  Options o = parse_run_options({});
  EXPECT_EQ(o.listen, std::vector<std::string>{"127.0.0.1:9887"});
  EXPECT_EQ(o.interval, 1000ms);
  EXPECT_TRUE(o.sources.empty());  // auto
  EXPECT_EQ(o.accounting, "auto");
  EXPECT_EQ(o.state_dir, "/var/lib/wattprobe");
  EXPECT_EQ(o.max_workloads, 5000u);
  EXPECT_EQ(o.ledger.state_dir, o.state_dir);
}

TEST(ParseOptions, ABadValueNamesTheOptionItsOriginAndTheValue) {
  std::string why = refusal({"--interval", "50ms"});
  EXPECT_NE(why.find("--interval"), std::string::npos) << why;
  EXPECT_NE(why.find("\"50ms\""), std::string::npos) << why;
  EXPECT_NE(why.find("command line"), std::string::npos) << why;
  EXPECT_NE(refusal({"--max-workloads", "lots"}).find("whole number"), std::string::npos);
  EXPECT_NE(refusal({"--sources", "rapl_powercap,warp_drive"}).find("warp_drive"),
            std::string::npos);
}

TEST(ParseOptions, IpmiOverTheLanNeedsItsAccountAndKnownWorkarounds) {
  TempTree tree;
  tree.write("user", "monitor\n");
  tree.write("password", "s3cret\n");
  const std::string user = (tree.root() / "user").string(),
                    password = (tree.root() / "password").string();
  Options o = parse_run_options({"--ipmi-host", "bmc.example:623", "--ipmi-user-file", user,
                                 "--ipmi-password-file", password, "--ipmi-workarounds",
                                 "opensesspriv,authcap"});
  EXPECT_EQ(o.ipmi.host, "bmc.example:623");
  EXPECT_NE(o.ipmi.workaround_flags, 0u);
  std::string why = refusal({"--ipmi-host", "bmc.example", "--ipmi-user-file", user,
                             "--ipmi-password-file", password, "--ipmi-workarounds", "turbo"});
  EXPECT_NE(why.find("--ipmi-workarounds"), std::string::npos) << why;
  EXPECT_NE(why.find("turbo"), std::string::npos) << why;
  why = refusal({"--ipmi-host", "bmc.example"});
  EXPECT_NE(why.find("--ipmi-user-file"), std::string::npos) << why;
  why = refusal({"--ipmi-user-file", user, "--ipmi-password-file", password});
  EXPECT_NE(why.find("need --ipmi-host"), std::string::npos) << why;
  why = refusal({"--ipmi-host", "https://bmc.example"});
  EXPECT_NE(why.find("HOST:PORT"), std::string::npos) << why;
}

TEST(ParseOptions, AnUnknownOptionIsRefused) {
  EXPECT_NE(refusal({"--intervall", "1s"}).find("intervall"), std::string::npos);
}

TEST(ParseOptions, TheCommandLineWinsOverTheConfigFile) {
  TempTree tree;
  const std::string file = config_file(tree, "interval = 2s\nmax-workloads = 10\n");
  Options o = parse_run_options({"--config", file, "--interval", "500ms"});
  EXPECT_EQ(o.interval, 500ms);
  EXPECT_EQ(o.max_workloads, 10u);
}

TEST(ParseOptions, AConfigFileErrorNamesTheFileAndTheLine) {
  TempTree tree;
  const std::string file = config_file(tree, "# comment\ninterval = 1s\nintervall = 2s\n");
  std::string why = refusal({"--config", file});
  EXPECT_NE(why.find(file), std::string::npos) << why;
  EXPECT_NE(why.find("line 3"), std::string::npos) << why;
  EXPECT_NE(why.find("intervall"), std::string::npos) << why;
}

TEST(ParseOptions, OnlyRepeatableOptionsMayRepeatInTheConfigFile) {
  TempTree tree;
  std::string why = refusal({"--config", config_file(tree, "interval = 1s\ninterval = 2s\n")});
  EXPECT_NE(why.find("line 2"), std::string::npos) << why;
  Options o = parse_run_options(
      {"--config", config_file(tree, "idle-watts = package=10\nidle-watts = dram=2\n")});
  EXPECT_EQ(o.attribution.idle_watts.size(), 2u);
}

TEST(ParseOptions, ListenIsOneAddressPerOptionNeverACommaList) {
  Options o = parse_run_options({"--listen", "127.0.0.1:0", "--listen", "[::1]:0"});
  EXPECT_EQ(o.listen.size(), 2u);
  EXPECT_NE(refusal({"--listen", "127.0.0.1:1,127.0.0.1:2"}).find("--listen"), std::string::npos);
}

TEST(ParseOptions, ConfigSectionsPrefixTheirKeys) {
  TempTree tree;
  Options o = parse_run_options(
      {"--config", config_file(tree, "[source.model]\nmin_watts_per_vcpu = 1.5\n")});
  EXPECT_DOUBLE_EQ(o.model.min_watts_per_vcpu, 1.5);
  std::string why = refusal({"--config", config_file(tree, "[no.such.section]\nkey = 1\n")});
  EXPECT_NE(why.find("no.such.section.key"), std::string::npos) << why;
}

TEST(ParseOptions, UnitSectionsAreNamedByTheUser) {
  TempTree tree;
  Options o = parse_run_options(
      {"--unit-window", "30s", "--config",
       config_file(tree,
                   "[unit.tokens]\nurl = http://127.0.0.1:8000/metrics\n"
                   "counter = vllm:generation_tokens_total\nworkload = vllm.service\n"
                   "match = model_name=llama\nmatch = engine=0\n"
                   "[unit.requests]\nurl = /var/lib/node_exporter/nginx.prom\n"
                   "counter = nginx_http_requests_total\nworkload = nginx*\n")});
  ASSERT_EQ(o.units.units.size(), 2u);
  const UnitSpec& tokens = o.units.units[0];
  EXPECT_EQ(tokens.name, "tokens");
  EXPECT_EQ(tokens.counter, "vllm:generation_tokens_total");
  EXPECT_EQ(tokens.workload, "vllm.service");
  ASSERT_EQ(tokens.match.size(), 2u);
  EXPECT_EQ(tokens.match[1], (std::pair<std::string, std::string>{"engine", "0"}));
  EXPECT_EQ(o.units.units[1].url, "/var/lib/node_exporter/nginx.prom");
  EXPECT_EQ(o.units.window, 30s);
  EXPECT_EQ(parse_run_options({}).units.window, 60s);
}

TEST(ParseOptions, AUnitSectionErrorNamesTheFileTheLineAndTheKey) {
  TempTree tree;
  auto why = [&](const std::string& text) {
    return refusal({"--config", config_file(tree, text)});
  };
  const std::string ok = "url = http://127.0.0.1:1/metrics\ncounter = c_total\nworkload = w\n";
  std::string w = why("[unit.t]\n" + ok + "colour = blue\n");
  EXPECT_NE(w.find("line 5"), std::string::npos) << w;
  EXPECT_NE(w.find("colour"), std::string::npos) << w;
  EXPECT_NE(w.find("wattprobe.conf"), std::string::npos) << w;
  w = why("[unit.t]\nurl = ftp://x/metrics\ncounter = c_total\nworkload = w\n");
  EXPECT_NE(w.find("ftp://x/metrics"), std::string::npos) << w;
  w = why("[unit.t]\nurl = http://127.0.0.1:1/\nworkload = w\n");
  EXPECT_NE(w.find("counter is missing"), std::string::npos) << w;
  w = why("[unit.t]\n" + ok + "counter = d_total\n");
  EXPECT_NE(w.find("already set"), std::string::npos) << w;
  w = why("[unit.t]\n" + ok + "match = not a label\n");
  EXPECT_NE(w.find("label=value"), std::string::npos) << w;
  w = why("[unit.t]\nurl = http://127.0.0.1:1/\ncounter = 9lives\nworkload = w\n");
  EXPECT_NE(w.find("9lives"), std::string::npos) << w;
  w = why("[unit.a.b]\n" + ok);
  EXPECT_NE(w.find("unit"), std::string::npos) << w;
  EXPECT_NE(refusal({"--unit-window", "5s"}).find("--unit-window"), std::string::npos);
  EXPECT_NE(refusal({"--job-records-max-bytes", "1000"}).find("1 MiB"), std::string::npos);
}

TEST(ParseOptions, EveryOptionHasOneLineInTheTableAndHelpShowsItsDefault) {
  const Options defaults;
  std::map<std::string, std::string> help;
  for (const OptionSpec<Options>& spec : run_option_table()) {
    EXPECT_FALSE(help.count(spec.name)) << spec.name << " is declared twice";
    help[spec.name] = spec.describe(defaults);
  }
  EXPECT_EQ(help["interval"], "tick length, 100ms to 1m (default 1s)");
  EXPECT_EQ(help["idle-attribution"],
            "where idle power goes: separate, proportional or even (default separate)");
  EXPECT_EQ(help["ledger-max-bytes"],
            "delete the oldest closed ledger day files past this many bytes in all, 1 MiB to 1 "
            "TiB (default 1073741824 = 1 GiB; 0 no cap)");
  EXPECT_NE(run_options_help().find("--source.model.min_watts_per_vcpu"), std::string::npos);
}

TEST(ParseOptions, EnumsAreReadFromTheirWords) {
  Options o = parse_run_options(
      {"--idle-attribution", "even", "--split-by", "cpu-time", "--accounting", "procfs"});
  EXPECT_EQ(o.attribution.idle_policy, IdlePolicy::even);
  EXPECT_EQ(o.attribution.split_by, SplitKey::cpu_time);
  EXPECT_EQ(o.accounting, "procfs");
  EXPECT_NE(refusal({"--split-by", "cpu"}).find("expected auto, cpu-time or cycles"),
            std::string::npos);
  TempTree tree;
  o = parse_run_options(
      {"--guest-energy-dir", tree.root().string(), "--idle-attribution", "proportional"});
  EXPECT_EQ(o.guest_energy.idle_attribution, "proportional");
}

/// packaging/wattprobe.conf, the file a package installs, follows the table: every option has a
/// line (commented out: `#name = value`, a section's keys under its [section]), no line names an
/// option the agent does not know, and where the table has a default the line shows it.
TEST(ParseOptions, ThePackagedConfigFileShowsEveryOptionAndItsDefault) {
  const std::string path = std::string(WATTPROBE_TEST_DATA) + "/../../packaging/wattprobe.conf";
  std::ifstream in(path);
  ASSERT_TRUE(in) << path;
  std::map<std::string, const OptionSpec<Options>*> table;
  for (const OptionSpec<Options>& spec : run_option_table()) table[spec.name] = &spec;
  const Options defaults;
  const std::regex key_line(R"(^#?([a-z][a-z0-9_.-]*) =( (.*))?$)");
  std::map<std::string, int> seen;
  std::string prefix, line;
  for (int number = 1; std::getline(in, line); ++number) {
    const std::string where = path + " line " + std::to_string(number) + ": " + line;
    if (line.starts_with("[") || line.starts_with("#[")) {
      const std::size_t open = line.find('[');
      prefix = line.substr(open + 1, line.find(']') - open - 1) + ".";
      continue;
    }
    std::smatch m;
    if (!std::regex_match(line, m, key_line)) continue;  // prose
    if (prefix.starts_with("unit.")) {  // a [unit.NAME] example: sections the user names
      EXPECT_TRUE(m[1] == "url" || m[1] == "counter" || m[1] == "match" || m[1] == "workload")
          << where;
      continue;
    }
    const std::string name = prefix + m[1].str();
    auto it = table.find(name);
    if (it == table.end()) {
      ADD_FAILURE() << "unknown option " << name << " at " << where;
      continue;
    }
    ++seen[name];
    const OptionSpec<Options>& spec = *it->second;
    const std::string want = spec.shown(defaults);
    if (want.empty() || seen[name] > 1) continue;  // an example; a default is shown first
    Options given = defaults;
    try {
      spec.set(given, {OptionValue{name, m[3].str(), where}});
    } catch (const UsageError& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    EXPECT_EQ(spec.shown(given), want) << "not the default at " << where;
  }
  for (const auto& [name, spec] : table) {
    EXPECT_TRUE(seen.count(name)) << "--" << name << " has no line in " << path << " (default \""
                                  << spec->shown(defaults) << "\")";
  }
}

}  // namespace
}  // namespace wattprobe
