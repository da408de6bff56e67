// The web config's tls_server_config, through to the OpenSSL context it makes: versions, cipher
// suites, curves and client-auth modes. The certificate files exist but hold no certificate, so
// every input ends at loading them, after everything else was applied.
#include <fstream>
#include <string>

#include "exporters/web_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = [] {
    const auto d = wattprobe::fuzz::scratch();
    for (const char* f : {"server.crt", "server.key", "ca.crt"})
      std::ofstream(d / f) << "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    return d.string();
  }();
  const std::string yaml = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" +
                           std::string(wattprobe::fuzz::text(data, size));
  auto c = wattprobe::parse_web_config(yaml, dir + "/web.yml");
  if (c && c->tls) (void)wattprobe::make_tls_context(*c->tls).ok();
  for (const auto& s : c && c->tls ? c->tls->cipher_suites : std::vector<std::string>{})
    (void)wattprobe::openssl_cipher_name(s);
  return 0;
}
