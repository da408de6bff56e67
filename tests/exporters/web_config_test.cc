#include "exporters/web_config.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

/// A folder holding a CA, a server certificate and key signed by it, and a second key that
/// matches nothing, made with the openssl tool.
class Certs : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string d = dir_.root().string();
    const std::string cmd =
        "cd " + d +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=ca -keyout ca.key -out ca.crt 2>/dev/null"
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
        "-subj /CN=server -keyout server.key -out server.crt 2>/dev/null"
        " && openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:P-256 -out other.key "
        "2>/dev/null";
    if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "the openssl tool is not installed";
  }
  Result<WebConfig> parse(const std::string& yaml) {
    return parse_web_config(yaml, dir_.root().string() + "/web.yml");
  }
  std::string detail(const std::string& yaml) {
    auto c = parse(yaml);
    return c ? "(parsed)" : c.error().detail;
  }
  wattprobe::testing::TempTree dir_;
};

constexpr const char* kPair =
    "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

TEST_F(Certs, ReadsEveryTlsFieldWithGoNames) {
  auto c = parse(std::string(kPair) +
                 "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
                 "  min_version: TLS12\n  max_version: TLS13\n"
                 "  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, "
                 "TLS_AES_128_GCM_SHA256]\n"
                 "  curve_preferences: [X25519, CurveP256]\n"
                 "  prefer_server_cipher_suites: false\n  client_allowed_sans: [client]\n"
                 "http_server_config:\n  http2: false\n  headers:\n"
                 "    Strict-Transport-Security: max-age=31536000\n");
  ASSERT_TRUE(c) << c.error().message();
  ASSERT_TRUE(c->tls);
  EXPECT_EQ(c->tls->cert_file, dir_.root().string() + "/server.crt");
  EXPECT_EQ(c->tls->max_version, "TLS13");
  EXPECT_EQ(c->tls->cipher_suites.size(), 2u);
  EXPECT_FALSE(c->tls->prefer_server_cipher_suites);
  ASSERT_EQ(c->http.headers.size(), 1u);
  EXPECT_EQ(c->http.headers[0].first, "Strict-Transport-Security");
  auto ctx = make_tls_context(*c->tls);
  ASSERT_TRUE(ctx) << ctx.error().message();
  EXPECT_EQ(SSL_CTX_get_min_proto_version(ctx->get()), TLS1_2_VERSION);
  EXPECT_EQ(SSL_CTX_get_max_proto_version(ctx->get()), TLS1_3_VERSION);
  EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->get()), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT);
}

TEST_F(Certs, EveryClientAuthModeMakesAContext) {
  const std::pair<const char*, int> modes[] = {
      {"NoClientCert", SSL_VERIFY_NONE},
      {"RequestClientCert", SSL_VERIFY_PEER},
      {"RequireAnyClientCert", SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT},
      {"VerifyClientCertIfGiven", SSL_VERIFY_PEER},
      {"RequireAndVerifyClientCert", SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT}};
  for (const auto& [mode, verify] : modes) {
    auto c =
        parse(std::string(kPair) + "  client_auth_type: " + mode + "\n  client_ca_file: ca.crt\n");
    ASSERT_TRUE(c) << mode << ": " << c.error().message();
    auto ctx = make_tls_context(*c->tls);
    ASSERT_TRUE(ctx) << mode;
    EXPECT_EQ(SSL_CTX_get_verify_mode(ctx->get()), verify) << mode;
  }
}

TEST_F(Certs, RefusesWhatCannotBeServedNamingTheField) {
  EXPECT_NE(detail(std::string(kPair) + "  min_version: TLS14\n").find("min_version"),
            std::string::npos);
  EXPECT_NE(detail(std::string(kPair) + "  min_version: TLS13\n  max_version: TLS12\n")
                .find("above max_version"),
            std::string::npos);
  EXPECT_NE(detail(std::string(kPair) + "  cipher_suites: [RC4]\n").find("cipher_suites"),
            std::string::npos);
  EXPECT_NE(detail(std::string(kPair) + "  curve_preferences: [P256]\n").find("CurveP256"),
            std::string::npos);
  EXPECT_NE(detail(std::string(kPair) + "  client_auth_type: RequireAndVerifyClientCert\n")
                .find("client_ca_file"),
            std::string::npos);
  EXPECT_NE(detail("http_server_config:\n  headers:\n    Content-Type: x\n").find("Content-Type"),
            std::string::npos);
  EXPECT_NE(
      detail("basic_auth_users:\n  u: '$2b$15$" + std::string(53, 'a') + "'\n").find("cost 15"),
      std::string::npos);
  EXPECT_NE(detail("basic_auth_users:\n  u: '{SHA}abc'\n").find("not a bcrypt"), std::string::npos);
  // A key that does not match its certificate: caught when the context is made.
  auto c = parse("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n");
  ASSERT_TRUE(c);
  auto ctx = make_tls_context(*c->tls);
  ASSERT_FALSE(ctx);
  EXPECT_EQ(ctx.error().path, "key_file");
}

TEST(OpensslCipherName, MapsGoNames) {
  EXPECT_EQ(openssl_cipher_name("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
            "ECDHE-RSA-AES128-GCM-SHA256");
  EXPECT_EQ(openssl_cipher_name("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"),
            "ECDHE-ECDSA-CHACHA20-POLY1305");
  EXPECT_EQ(openssl_cipher_name("ECDHE-RSA-AES128-GCM-SHA256"), "");
}

TEST(CheckBasicAuth, UnknownUsersAreCheckedAgainstADummyOfTheUsersCost) {
  WebConfig web;
  web.basic_auth_users["u"] = "$2b$05$" + std::string(53, 'a');
  const std::string dummy = make_dummy_hash(web);
  ASSERT_EQ(dummy.size(), 60u);
  EXPECT_EQ(dummy.substr(0, 7), "$2b$05$");
  EXPECT_FALSE(check_basic_auth(web, "nobody", "x", dummy));
}

}  // namespace
}  // namespace wattprobe
