// --web-config-file YAML (exporter-toolkit format: tls_server_config, basic_auth_users).
#include "exporters/web_config.h"

#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto c = wattprobe::parse_web_config(wattprobe::fuzz::text(data, size), "/etc/wattprobe/web.yml");
  (void)c.ok();
  return 0;
}
