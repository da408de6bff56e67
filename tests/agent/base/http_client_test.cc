#include "agent/base/http_client.h"

#include <gtest/gtest.h>

#include "tests/support/fake_grid_api.h"

namespace wattprobe {
namespace {

using testing::FakeGridApi;

FakeGridApi& server() {
  static FakeGridApi api;
  return api;
}

TEST(HttpClient, ReadsBodyStatusAndRetryAfter) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  HttpClient client;
  api.set_mode("http429");
  HttpGetResult r = client.get({api.base_url() + "/intensity", {}, {}, {}});
  api.set_mode("ok");
  ASSERT_TRUE(r.ok()) << r.detail;
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.retry_after_s, 120);
  r = client.get({api.base_url() + "/intensity", {}, {}, {}});
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"intensity\""), std::string::npos);
}

TEST(HttpClient, TotalTimeoutStopsAServerThatNeverAnswers) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  HttpClient client(
      {.connect_timeout_s = 1, .total_timeout_s = 0.5, .max_body_bytes = 1 << 20, .ca_file = {}});
  api.set_mode("hang");
  auto t0 = std::chrono::steady_clock::now();
  HttpGetResult r = client.get({api.base_url() + "/intensity", {}, {}, {}});
  auto took = std::chrono::steady_clock::now() - t0;
  api.set_mode("ok");
  EXPECT_EQ(r.reason, "timeout");
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(HttpClient, BodyCapStopsA50MegabyteAnswerWithOrWithoutLength) {
  FakeGridApi& api = server();
  ASSERT_TRUE(api.running());
  for (std::string mode : {"huge", "huge_chunked"}) {
    HttpClient client(
        {.connect_timeout_s = 1, .total_timeout_s = 10, .max_body_bytes = 1 << 20, .ca_file = {}});
    api.set_mode(mode);
    HttpGetResult r = client.get({api.base_url() + "/intensity", {}, {}, {}});
    EXPECT_EQ(r.reason, "too_large") << mode << ": " << r.detail;
    EXPECT_TRUE(r.body.empty());
  }
  api.set_mode("ok");
}

TEST(HttpClient, RefusesASelfSignedCertificate) {
  FakeGridApi tls(/*https=*/true);
  ASSERT_TRUE(tls.running());
  HttpClient client(
      {.connect_timeout_s = 2, .total_timeout_s = 5, .max_body_bytes = 1 << 20, .ca_file = {}});
  HttpGetResult r = client.get({tls.base_url() + "/intensity", {}, {}, {}});
  EXPECT_EQ(r.reason, "tls") << r.detail;
  std::cout << "[bad answer] tls -> reason=tls: " << r.detail << "\n";
}

TEST(HttpClient, ConnectionRefusedIsConnect) {
  HttpClient client(
      {.connect_timeout_s = 1, .total_timeout_s = 2, .max_body_bytes = 1024, .ca_file = {}});
  // Port 1 on loopback: nothing listens there on a test host.
  HttpGetResult r = client.get({"http://127.0.0.1:1/intensity", {}, {}, {}});
  EXPECT_EQ(r.reason, "connect") << r.detail;
}

TEST(HttpClient, ErrorsCarryNoCredentials) {
  HttpClient client(
      {.connect_timeout_s = 1, .total_timeout_s = 2, .max_body_bytes = 1024, .ca_file = {}});
  HttpGetResult r = client.get(
      {"http://user:SECRET@127.0.0.1:1/x?key=SECRET", {"auth-token: SECRET"}, "user", "SECRET"});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.detail.find("SECRET"), std::string::npos) << r.detail;
  EXPECT_EQ(redact_url("https://u:SECRET@host:8/a/b?token=SECRET#f"), "https://host:8/a/b");
}

// One parser for every Retry-After the agent reads (grid APIs, remote-write and OTLP
// receivers), held to a year so no caller's conversion to milliseconds can overflow (issue 25).
TEST(HttpClient, RetryAfterHeaderLines) {
  EXPECT_EQ(parse_retry_after_header("Retry-After: 120\r\n"), 120);
  EXPECT_EQ(parse_retry_after_header("retry-after:0\r\n"), 0);
  EXPECT_EQ(parse_retry_after_header("Retry-After: 999999999\r\n"), kMaxRetryAfterSeconds);
  EXPECT_EQ(parse_retry_after_header("Retry-After: 99999999999999999999999\r\n"),
            kMaxRetryAfterSeconds);
  EXPECT_EQ(parse_retry_after_header("Retry-After: -5\r\n"), std::nullopt);
  EXPECT_EQ(parse_retry_after_header("Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"),
            std::nullopt);
  EXPECT_EQ(parse_retry_after_header("Retry-After: 12s\r\n"), std::nullopt);
  EXPECT_EQ(parse_retry_after_header("Content-Length: 12\r\n"), std::nullopt);
  EXPECT_EQ(parse_retry_after_header("Retry-After:"), std::nullopt);
}

}  // namespace
}  // namespace wattprobe
