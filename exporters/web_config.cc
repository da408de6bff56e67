#include "exporters/web_config.h"

#include <crypt.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>

#include "agent/base/text_file.h"

namespace wattprobe {

namespace {

// A bcrypt hash: "$2b$" (or $2a$, $2y$), two cost digits, '$', 53 characters of salt and hash.
bool is_bcrypt(const std::string& h) {
  return h.size() == 60 &&
         (h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$")) &&
         std::isdigit(static_cast<unsigned char>(h[4])) &&
         std::isdigit(static_cast<unsigned char>(h[5])) && h[6] == '$';
}

int bcrypt_cost(const std::string& h) { return (h[4] - '0') * 10 + (h[5] - '0'); }

struct Bad {
  std::string detail;
};

[[noreturn]] void fail(const std::string& field, const std::string& why) {
  throw Bad{field + ": " + why};
}

std::string scalar(const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) fail(field, "expected a string");
  return n.Scalar();
}

bool boolean(const YAML::Node& n, const std::string& field) {
  const std::string v = scalar(n, field);
  if (v == "true") return true;
  if (v == "false") return false;
  fail(field, "\"" + v + "\" is not true or false");
}

std::vector<std::string> strings(const YAML::Node& n, const std::string& field) {
  std::vector<std::string> out;
  if (n.IsNull()) return out;
  if (!n.IsSequence()) fail(field, "expected a list");
  for (const auto& item : n) out.push_back(scalar(item, field));
  return out;
}

std::string resolve(const std::string& file, const std::string& config_path) {
  if (file.empty() || file.starts_with("/")) return file;
  return (std::filesystem::path(config_path).parent_path() / file).string();
}

void readable(const std::string& file, const std::string& field) {
  if (access(file.c_str(), R_OK) != 0) fail(field, "\"" + file + "\" cannot be read");
}

// Go's crypto/tls names, as the toolkit reads them.
int tls_version(const std::string& v) {
  if (v == "TLS10") return TLS1_VERSION;
  if (v == "TLS11") return TLS1_1_VERSION;
  if (v == "TLS12") return TLS1_2_VERSION;
  if (v == "TLS13") return TLS1_3_VERSION;
  return 0;
}

// TLS 1.3's suites, which OpenSSL sets apart from the older ones (and Go does not let choose).
const std::set<std::string, std::less<>> kTls13Suites = {
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"};

std::string openssl_group_name(std::string_view go) {
  if (go == "CurveP256") return "P-256";
  if (go == "CurveP384") return "P-384";
  if (go == "CurveP521") return "P-521";
  if (go == "X25519") return "X25519";
  return "";
}

TlsServerConfig parse_tls(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) fail("tls_server_config", "expected a mapping");
  TlsServerConfig tls;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string field = "tls_server_config." + key;
    if (key == "cert_file") {
      tls.cert_file = resolve(scalar(kv.second, field), path);
    } else if (key == "key_file") {
      tls.key_file = resolve(scalar(kv.second, field), path);
    } else if (key == "client_ca_file") {
      tls.client_ca_file = resolve(scalar(kv.second, field), path);
    } else if (key == "client_auth_type") {
      tls.client_auth_type = scalar(kv.second, field);
    } else if (key == "min_version" || key == "max_version") {
      const std::string v = scalar(kv.second, field);
      if (!tls_version(v)) fail(field, "\"" + v + "\" is not TLS10, TLS11, TLS12 or TLS13");
      (key == "min_version" ? tls.min_version : tls.max_version) = v;
    } else if (key == "cipher_suites") {
      tls.cipher_suites = strings(kv.second, field);
      for (const auto& s : tls.cipher_suites) {
        if (!kTls13Suites.count(s) && openssl_cipher_name(s).empty())
          fail(field, "\"" + s + "\" is not a cipher suite Go knows (TLS_ECDHE_RSA_WITH_...)");
      }
    } else if (key == "curve_preferences") {
      tls.curve_preferences = strings(kv.second, field);
      for (const auto& c : tls.curve_preferences) {
        if (openssl_group_name(c).empty())
          fail(field, "\"" + c + "\" is not CurveP256, CurveP384, CurveP521 or X25519");
      }
    } else if (key == "prefer_server_cipher_suites") {
      tls.prefer_server_cipher_suites = boolean(kv.second, field);
    } else if (key == "client_allowed_sans") {
      tls.client_allowed_sans = strings(kv.second, field);
    } else if (key == "cert" || key == "key") {
      fail(field, "inline certificates are not supported by wattprobe; use " + key + "_file");
    } else {
      fail(field, "unknown field");
    }
  }
  if (tls.cert_file.empty()) fail("tls_server_config.cert_file", "required");
  if (tls.key_file.empty()) fail("tls_server_config.key_file", "required");
  readable(tls.cert_file, "tls_server_config.cert_file");
  readable(tls.key_file, "tls_server_config.key_file");
  if (tls_version(tls.min_version) > tls_version(tls.max_version)) {
    fail("tls_server_config.min_version",
         tls.min_version + " is above max_version " + tls.max_version);
  }
  static const std::set<std::string> kAuthTypes = {
      "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
      "RequireAndVerifyClientCert"};
  if (!kAuthTypes.count(tls.client_auth_type)) {
    fail("tls_server_config.client_auth_type",
         "\"" + tls.client_auth_type +
             "\" is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, "
             "VerifyClientCertIfGiven, RequireAndVerifyClientCert");
  }
  const bool verifies = tls.client_auth_type == "VerifyClientCertIfGiven" ||
                        tls.client_auth_type == "RequireAndVerifyClientCert";
  if (verifies && tls.client_ca_file.empty())
    fail("tls_server_config.client_ca_file", "required with " + tls.client_auth_type);
  if (!tls.client_allowed_sans.empty() && !verifies) {
    fail("tls_server_config.client_allowed_sans",
         "needs client_auth_type VerifyClientCertIfGiven or RequireAndVerifyClientCert");
  }
  if (!tls.client_ca_file.empty()) readable(tls.client_ca_file, "tls_server_config.client_ca_file");
  return tls;
}

HttpServerConfig parse_http(const YAML::Node& node) {
  if (!node.IsMap()) fail("http_server_config", "expected a mapping");
  // exporter-toolkit's list: a header the server sets itself (Content-Type, Content-Length)
  // cannot be replaced from the config.
  static const std::set<std::string> kHeaders = {"Strict-Transport-Security",
                                                 "X-Content-Type-Options", "X-Frame-Options",
                                                 "X-XSS-Protection", "Content-Security-Policy"};
  HttpServerConfig http;
  for (const auto& kv : node) {
    const std::string key = kv.first.as<std::string>();
    const std::string field = "http_server_config." + key;
    if (key == "http2") {
      http.http2 = boolean(kv.second, field);
    } else if (key == "headers") {
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsMap()) fail(field, "expected a mapping of header name to value");
      for (const auto& h : kv.second) {
        const std::string name = h.first.as<std::string>();
        const std::string value = scalar(h.second, field + "." + name);
        if (!kHeaders.count(name)) {
          fail(field + "." + name,
               "is not one of Strict-Transport-Security, X-Content-Type-Options, "
               "X-Frame-Options, X-XSS-Protection, Content-Security-Policy");
        }
        for (const char c : value) {
          if (c == '\r' || c == '\n' || c == '\0')
            fail(field + "." + name, "a header value holds no line break");
        }
        http.headers.emplace_back(name, value);
      }
    } else {
      fail(field, "unknown field");
    }
  }
  return http;
}

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// RequestClientCert and RequireAnyClientCert take a certificate without checking it, as Go does.
int accept_any_certificate(int, X509_STORE_CTX*) { return 1; }

}  // namespace

std::string openssl_cipher_name(std::string_view go) {
  static const std::map<std::string, std::string, std::less<>> kNames = {
      {"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"},
      {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
      {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
      {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
      {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
      {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
      {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "ECDHE-RSA-DES-CBC3-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
      {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
      {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
      // Go's older spellings of the last two.
      {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
      {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
  };
  auto it = kNames.find(go);
  return it == kNames.end() ? std::string() : it->second;
}

Result<WebConfig> parse_web_config(std::string_view yaml, const std::string& path) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    WebConfig config;
    if (root.IsNull()) return config;  // an empty file, as the toolkit allows: plain HTTP
    if (!root.IsMap()) fail("(top level)", "expected a mapping");
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key == "tls_server_config") {
        config.tls = parse_tls(kv.second, path);
      } else if (key == "basic_auth_users") {
        if (kv.second.IsNull()) continue;
        if (!kv.second.IsMap()) fail(key, "expected a mapping of user name to bcrypt hash");
        for (const auto& user : kv.second) {
          const std::string name = user.first.as<std::string>();
          const std::string field = key + "." + name;
          if (name.empty() || name.find(':') != std::string::npos)
            fail(field, "a user name must be non-empty and hold no ':'");
          const std::string hash = scalar(user.second, field);
          // The hash is not quoted back: it is as good as a password to an offline attack.
          if (!is_bcrypt(hash)) fail(field, "is not a bcrypt hash ($2a$, $2b$ or $2y$)");
          const int cost = bcrypt_cost(hash);
          if (cost < 4 || cost > kMaxBcryptCost) {
            fail(field, "bcrypt cost " + std::to_string(cost) + " is outside 4 to " +
                            std::to_string(kMaxBcryptCost) +
                            " (each uncached check would take too long)");
          }
          config.basic_auth_users[name] = hash;
        }
      } else if (key == "http_server_config") {
        config.http = parse_http(kv.second);
      } else {
        fail(key, "unknown field");
      }
    }
    return config;
  } catch (const Bad& b) {
    return Error{ErrorKind::malformed, path, b.detail};
  } catch (const YAML::Exception& e) {
    return Error{ErrorKind::malformed, path,
                 "line " + std::to_string(e.mark.line + 1) + ": " + e.msg};
  }
}

Result<WebConfig> read_web_config(const std::string& path) {
  auto text = read_text(path, 1 << 20);
  if (!text) return text.error();
  auto config = parse_web_config(*text, path);
  if (!config || !config->tls) return config;
  // The files are read now too, so a key that does not match its certificate stops the start.
  if (auto ctx = make_tls_context(*config->tls); !ctx) {
    return Error{ErrorKind::malformed, path, "tls_server_config: " + ctx.error().message()};
  }
  return config;
}

void SslCtxFree::operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }

Result<SslCtxPtr> make_tls_context(const TlsServerConfig& tls) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Error{ErrorKind::transient, "", openssl_errors()};
  SSL_CTX* c = ctx.get();
  auto bad = [](const std::string& field, const std::string& value) {
    return Error{ErrorKind::malformed, field, value + ": " + openssl_errors()};
  };
  SSL_CTX_set_options(c,
                      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                          (tls.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  SSL_CTX_set_min_proto_version(c, tls_version(tls.min_version));
  SSL_CTX_set_max_proto_version(c, tls_version(tls.max_version));
  // OpenSSL 3's default security level refuses TLS 1.0 and 1.1 whatever the versions say; a
  // config that asks for them gets them, as Go would serve them.
  if (tls_version(tls.min_version) < TLS1_2_VERSION) SSL_CTX_set_security_level(c, 0);
  std::string tls12, tls13;
  for (const auto& s : tls.cipher_suites) {
    std::string& list = kTls13Suites.count(s) ? tls13 : tls12;
    if (!list.empty()) list += ':';
    list += kTls13Suites.count(s) ? s : openssl_cipher_name(s);
  }
  if (!tls12.empty() && SSL_CTX_set_cipher_list(c, tls12.c_str()) != 1)
    return bad("cipher_suites", tls12);
  if (!tls13.empty() && SSL_CTX_set_ciphersuites(c, tls13.c_str()) != 1)
    return bad("cipher_suites", tls13);
  if (!tls.curve_preferences.empty()) {
    std::string groups;
    for (const auto& g : tls.curve_preferences)
      groups += (groups.empty() ? "" : ":") + openssl_group_name(g);
    if (SSL_CTX_set1_groups_list(c, groups.c_str()) != 1) return bad("curve_preferences", groups);
  }
  if (SSL_CTX_use_certificate_chain_file(c, tls.cert_file.c_str()) != 1)
    return bad("cert_file", tls.cert_file);
  if (SSL_CTX_use_PrivateKey_file(c, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return bad("key_file", tls.key_file);
  if (SSL_CTX_check_private_key(c) != 1)
    return bad("key_file", tls.key_file + " does not match " + tls.cert_file);
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(c, tls.client_ca_file.c_str(), nullptr) != 1)
      return bad("client_ca_file", tls.client_ca_file);
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str());
    if (!names) return bad("client_ca_file", tls.client_ca_file);
    SSL_CTX_set_client_CA_list(c, names);
  }
  const std::string& mode = tls.client_auth_type;
  if (mode == "RequestClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, accept_any_certificate);
  } else if (mode == "RequireAnyClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       accept_any_certificate);
  } else if (mode == "VerifyClientCertIfGiven") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  } else if (mode == "RequireAndVerifyClientCert") {
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  }
  // Resumed sessions with client certificates need an id context, or OpenSSL fails them.
  static const unsigned char kContext[] = "wattprobe";
  SSL_CTX_set_session_id_context(c, kContext, sizeof kContext - 1);
  return ctx;
}

std::string make_dummy_hash(const WebConfig& config) {
  // The costliest user's cost: an unknown user then takes no less time than any known one.
  int cost = config.basic_auth_users.empty() ? 10 : 4;
  for (const auto& [user, hash] : config.basic_auth_users) cost = std::max(cost, bcrypt_cost(hash));
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), nullptr, 0, salt, sizeof salt))
    return "";
  unsigned char random[16];
  std::string password;
  if (RAND_bytes(random, sizeof random) == 1)
    password.assign(reinterpret_cast<char*>(random), sizeof random);
  for (char& ch : password) ch = static_cast<char>('a' + static_cast<unsigned char>(ch) % 26);
  auto data = std::make_unique<crypt_data>();
  const char* got = crypt_r(password.c_str(), salt, data.get());
  return got && got[0] != '*' ? std::string(got) : std::string();
}

bool check_basic_auth(const WebConfig& config, const std::string& user, const std::string& password,
                      const std::string& dummy_hash) {
  auto it = config.basic_auth_users.find(user);
  const bool known = it != config.basic_auth_users.end();
  const std::string& hash = known ? it->second : dummy_hash;
  if (hash.empty()) return false;
  // crypt_data is some 32 KiB: too big for a server thread's stack to hold comfortably.
  auto data = std::make_unique<crypt_data>();
  const char* got = crypt_r(password.c_str(), hash.c_str(), data.get());
  if (!got || got[0] == '*') return false;  // libxcrypt's failure tokens start with '*'
  const std::string_view g(got);
  if (g.size() != hash.size()) return false;
  unsigned char diff = 0;  // compared in full, so the time says nothing about where it differs
  for (std::size_t i = 0; i < g.size(); ++i) diff |= static_cast<unsigned char>(g[i] ^ hash[i]);
  return known && diff == 0;
}

}  // namespace wattprobe
