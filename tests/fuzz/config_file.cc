// The --config file (INI: sections, key = value, comments) through the whole option parser, as
// `wattprobe run --config FILE` reads it. A refusal is a UsageError naming the line.
#include <fstream>

#include "agent/cli/parse_options.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::filesystem::path file = wattprobe::fuzz::scratch() / "wattprobe.conf";
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    wattprobe::Options o = wattprobe::parse_run_options({"--config", file.string()});
    (void)o.state_dir;
  } catch (const wattprobe::UsageError&) {
  }
  return 0;
}
