#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "agent/base/result.h"

namespace wattprobe {

/// `tls_server_config` of the Prometheus exporter-toolkit web config (what node_exporter's
/// --web.config.file reads). Paths are resolved against the config file's folder, as the toolkit
/// does.
struct TlsServerConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: no client certificates are asked for
  /// NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or
  /// RequireAndVerifyClientCert, with Go's crypto/tls meanings.
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS12 or TLS13
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;
  /// User name -> bcrypt hash ($2a$, $2b$ or $2y$). Empty: no authentication.
  std::map<std::string, std::string> basic_auth_users;
};

/// Parses the YAML text of a web config read from `path`. Every key is checked: an unknown or
/// unsupported one, a wrong type, a missing file or a hash that is not bcrypt is malformed,
/// and the error names the file, the field and the value (never a hash or password).
Result<WebConfig> parse_web_config(std::string_view yaml, const std::string& path);

/// read_text + parse_web_config.
Result<WebConfig> read_web_config(const std::string& path);

/// True when `password` matches `user`'s bcrypt hash, checked with the C library's crypt_r. An
/// unknown user costs one bcrypt as well, so the answer time does not tell which users exist.
bool check_basic_auth(const WebConfig& config, const std::string& user,
                      const std::string& password);

}  // namespace wattprobe
