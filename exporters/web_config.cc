#include "exporters/web_config.h"

#include <crypt.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

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

// A valid bcrypt hash of a password nobody knows, checked for unknown users so that they cost
// as much as known ones.
constexpr const char* kDummyHash = "$2y$10$l/t1y2zil3/GeQCZbgAvJOv3xoVb8PyyP6DRitY9/pEdwLQkpcl6W";

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

std::string resolve(const std::string& file, const std::string& config_path) {
  if (file.empty() || file.starts_with("/")) return file;
  return (std::filesystem::path(config_path).parent_path() / file).string();
}

void readable(const std::string& file, const std::string& field) {
  if (access(file.c_str(), R_OK) != 0) fail(field, "\"" + file + "\" cannot be read");
}

TlsServerConfig parse_tls(const YAML::Node& node, const std::string& path) {
  if (!node.IsMap()) fail("tls_server_config", "expected a mapping");
  TlsServerConfig tls;
  static const std::set<std::string> kUnsupported = {"cert",
                                                     "key",
                                                     "max_version",
                                                     "cipher_suites",
                                                     "curve_preferences",
                                                     "client_allowed_sans",
                                                     "prefer_server_cipher_suites"};
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
    } else if (key == "min_version") {
      tls.min_version = scalar(kv.second, field);
      if (tls.min_version != "TLS12" && tls.min_version != "TLS13")
        fail(field, "\"" + tls.min_version + "\" is not TLS12 or TLS13");
    } else if (kUnsupported.count(key)) {
      fail(field, "is not supported by wattprobe");
    } else {
      fail(field, "unknown field");
    }
  }
  if (tls.cert_file.empty()) fail("tls_server_config.cert_file", "required");
  if (tls.key_file.empty()) fail("tls_server_config.key_file", "required");
  readable(tls.cert_file, "tls_server_config.cert_file");
  readable(tls.key_file, "tls_server_config.key_file");
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
  if (!tls.client_ca_file.empty()) readable(tls.client_ca_file, "tls_server_config.client_ca_file");
  return tls;
}

}  // namespace

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
          config.basic_auth_users[name] = hash;
        }
      } else if (key == "http_server_config") {
        fail(key, "is not supported by wattprobe");
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
  return parse_web_config(*text, path);
}

bool check_basic_auth(const WebConfig& config, const std::string& user,
                      const std::string& password) {
  auto it = config.basic_auth_users.find(user);
  const bool known = it != config.basic_auth_users.end();
  const std::string& hash = known ? it->second : std::string(kDummyHash);
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
