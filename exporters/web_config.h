#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/result.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace wattprobe {

/// `tls_server_config` of the Prometheus exporter-toolkit web config (what node_exporter's
/// --web.config.file reads), every field. Paths are resolved against the config file's folder,
/// as the toolkit does.
struct TlsServerConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // empty: no CA to verify client certificates with
  /// NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or
  /// RequireAndVerifyClientCert, with Go's crypto/tls meanings.
  std::string client_auth_type = "NoClientCert";
  std::string min_version = "TLS12";  // TLS10, TLS11, TLS12 or TLS13, as Go spells them
  std::string max_version = "TLS13";
  /// Go's names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256). Empty: OpenSSL's defaults. As in Go,
  /// they choose among TLS 1.2 suites and below; TLS 1.3's are always on.
  std::vector<std::string> cipher_suites;
  std::vector<std::string> curve_preferences;  // CurveP256, CurveP384, CurveP521, X25519
  bool prefer_server_cipher_suites = true;
  /// A client certificate must hold one of these as a DNS, IP, e-mail or URI SAN. Empty: any.
  std::vector<std::string> client_allowed_sans;
};

/// `http_server_config`.
struct HttpServerConfig {
  /// Added to every answer. The toolkit's list: Strict-Transport-Security,
  /// X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy.
  std::vector<std::pair<std::string, std::string>> headers;
  bool http2 = true;  // accepted for the toolkit's sake; the server speaks HTTP/1.1
};

struct WebConfig {
  std::optional<TlsServerConfig> tls;
  HttpServerConfig http;
  /// User name -> bcrypt hash ($2a$, $2b$ or $2y$, cost 4 to 14). Empty: no authentication.
  std::map<std::string, std::string> basic_auth_users;
};

/// The highest bcrypt cost accepted: one check at cost 14 takes about a second of a core, and
/// every scrape whose credentials are not cached pays it.
inline constexpr int kMaxBcryptCost = 14;

/// Parses the YAML text of a web config read from `path`. Every key is checked: an unknown one,
/// a wrong type, a missing file, an unknown TLS version, cipher suite or curve, or a hash that is
/// not bcrypt or costs more than kMaxBcryptCost is malformed, and the error names the file, the
/// field and the value (never a hash or password).
Result<WebConfig> parse_web_config(std::string_view yaml, const std::string& path);

/// read_text + parse_web_config.
Result<WebConfig> read_web_config(const std::string& path);

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const;
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

/// An OpenSSL server context for `tls`, its files read now: the certificate chain and key (which
/// must match), the client CA, versions, suites and curves, and the client-auth mode. An error
/// names the file or field; a running server keeps its last good context.
Result<SslCtxPtr> make_tls_context(const TlsServerConfig& tls);

/// The OpenSSL name of a Go cipher suite name, or empty when Go has no such suite.
std::string openssl_cipher_name(std::string_view go_name);

/// True when `password` matches `user`'s bcrypt hash, checked with the C library's crypt_r.
/// `dummy_hash` (a bcrypt hash of an unknown password, of the users' cost) is checked for an
/// unknown user, so the answer time does not tell which users exist. Slow: never on an I/O
/// thread.
bool check_basic_auth(const WebConfig& config, const std::string& user, const std::string& password,
                      const std::string& dummy_hash);

/// A bcrypt hash of a random password at the highest cost among `config`'s users, for
/// check_basic_auth's unknown users.
std::string make_dummy_hash(const WebConfig& config);

}  // namespace wattprobe
