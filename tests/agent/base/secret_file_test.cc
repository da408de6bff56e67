#include "agent/base/secret_file.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

TEST(SecretFile, TrimsTheNewlineEditorsLeave) {
  testing::TempTree t;
  t.write("token", "  abc.def-123  \n");
  auto s = read_secret_file(t.path("token").string());
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(*s, "abc.def-123");
}

TEST(SecretFile, RefusesCrLfAndNulInsideNamingTheFileNotTheValue) {
  testing::TempTree t;
  const std::string cases[] = {std::string("abc\nX-Injected: yes"), std::string("abc\rdef"),
                               std::string("abc\0def", 7)};
  for (const std::string& text : cases) {
    t.write("token", text + "\n");
    const std::string path = t.path("token").string();
    auto s = read_secret_file(path);
    ASSERT_FALSE(s.ok()) << "accepted a secret with a control character";
    EXPECT_EQ(s.error().kind, ErrorKind::malformed);
    const std::string m = s.error().message();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("at byte 3"), std::string::npos) << m;
    EXPECT_EQ(m.find("abc"), std::string::npos) << "the message shows the secret: " << m;
    EXPECT_EQ(m.find("Injected"), std::string::npos) << m;
    // The start-up check refuses the same file.
    EXPECT_FALSE(check_secret_file(path).ok());
  }
}

TEST(SecretFile, EmptyAndMissingFilesAreErrorsButNotStartUpRefusals) {
  testing::TempTree t;
  t.write("empty", "\n");
  auto empty = read_secret_file(t.path("empty").string());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().kind, ErrorKind::malformed);
  auto missing = read_secret_file(t.path("missing").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().kind, ErrorKind::absent);
  // A token may be mounted after start: only a secret that would inject stops the start.
  EXPECT_TRUE(check_secret_file(t.path("empty").string()).ok());
  EXPECT_TRUE(check_secret_file(t.path("missing").string()).ok());
}

TEST(SecretFile, EnvironmentTextNamesTheVariable) {
  auto ok = secret_from_text(" key123\n", "$EM_TOKEN");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "key123");
  auto bad = secret_from_text("key\r\nHost: evil", "$EM_TOKEN");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("$EM_TOKEN"), std::string::npos);
  EXPECT_EQ(bad.error().message().find("evil"), std::string::npos);
}

TEST(SecretFile, CredentialHeaderNames) {
  for (const char* n : {"Authorization", "X-Api-Key", "x-auth-token", "Proxy-Authorization",
                        "X-Scope-Secret", "apikey", "Cookie"})
    EXPECT_TRUE(is_credential_header(n)) << n;
  for (const char* n : {"X-Scope-OrgID", "X-Tenant", "Accept"})
    EXPECT_FALSE(is_credential_header(n)) << n;
}

TEST(SecretFile, UrlCredentials) {
  EXPECT_TRUE(url_has_credentials("https://user:pw@example.com/api/v1/write"));
  EXPECT_TRUE(url_has_credentials("http://token@example.com"));
  EXPECT_FALSE(url_has_credentials("https://example.com/api/v1/write"));
  // An '@' after the authority is part of the path or query, not a credential.
  EXPECT_FALSE(url_has_credentials("https://example.com/write?who=a@b"));
  EXPECT_FALSE(url_has_credentials("not a url"));
}

// Issue 25: secrets in a URL's query reach proxy and server logs; parse_options warns about them.
TEST(SecretFile, SecretQueryParameters) {
  EXPECT_EQ(secret_query_parameter("https://api.example/v3?zone=DE&token=abc"), "token");
  EXPECT_EQ(secret_query_parameter("https://h/write?api_key=abc"), "api_key");
  EXPECT_EQ(secret_query_parameter("https://h/write?Key=abc#frag"), "Key");
  EXPECT_EQ(secret_query_parameter("https://h/write?password=x"), "password");
  EXPECT_EQ(secret_query_parameter("https://h/write?sig=x&a=b"), "sig");
  EXPECT_EQ(secret_query_parameter("https://h/write?zone=DE&tenant=a"), "");
  EXPECT_EQ(secret_query_parameter("https://h/write#token=x"), "");
  EXPECT_EQ(secret_query_parameter("https://h/write"), "");
}

}  // namespace
}  // namespace wattprobe
