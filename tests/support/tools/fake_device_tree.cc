// Writes fixture device-health trees for the end-to-end tests (tests/support/fake_device_health.h
// names the values):
//
//   fake_device_tree --root DIR SCENARIO...
//       SCENARIO: laptop, malformed, throttle, temperatures, ina3221, ina3221_no_input, storage,
//       none
//
// The trees are static (no driver): batteries, counters, rails keep the values written.
// Exit 0; 2 on a bad argument.
#include <cstdio>
#include <string>

#include "tests/support/fake_device_health.h"

int main(int argc, char** argv) {
  if (argc < 4 || std::string(argv[1]) != "--root") {
    std::fprintf(stderr, "usage: fake_device_tree --root DIR SCENARIO...\n");
    return 2;
  }
  wattprobe::testing::SysfsWriter out{std::filesystem::path(argv[2])};
  for (int i = 3; i < argc; ++i) {
    if (!wattprobe::testing::write_device_health_scenario(out, argv[i])) {
      std::fprintf(stderr, "fake_device_tree: unknown scenario \"%s\"\n", argv[i]);
      return 2;
    }
  }
  return 0;
}
