// `wattprobe run`'s options as a user meets them: defaults when nothing is given, the command line
// over the config file, and every refusal naming the option, where it came from and the value.

#include "agent/cli/parse_options.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
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

}  // namespace
}  // namespace wattprobe
