#pragma once

#include <atomic>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/result.h"

namespace wattprobe {

/// One HTTP exchange with a BMC. `reason` is empty when an answer came (any status), else one
/// of timeout, connect, tls, too_large, transport, stopped. Nothing here ever holds a credential.
struct RedfishAnswer {
  long status = 0;
  std::string body;
  std::string auth_token;  // X-Auth-Token of a session login
  std::string location;    // Location of a session login: what logout deletes
  std::string reason;
  std::string detail;
  bool ok() const { return reason.empty(); }
};

struct RedfishRequest {
  std::string method = "GET";  // GET, POST, DELETE
  std::string path;            // "/redfish/v1/Chassis", joined to the base URL
  std::string body;            // JSON, for POST
  std::string auth_token;      // sent as X-Auth-Token when set
  bool basic = false;          // send HTTP basic auth with the credentials the transport holds
};

/// The wire, behind a seam so the session logic is tested without a BMC.
class RedfishTransport {
 public:
  virtual ~RedfishTransport() = default;
  virtual RedfishAnswer exchange(const RedfishRequest& request) = 0;
};

struct RedfishTransportOptions {
  std::string base_url;  // scheme://host[:port], no path
  std::string user, password;
  std::string ca_file;  // empty: the system store
  bool insecure_skip_verify = false;
  double timeout_s = 5;
  /// A Chassis or Sensor document is a few kB; a bigger answer is a wrong endpoint or a hostile
  /// one, refused before it is parsed.
  std::size_t max_body_bytes = 1u << 20;
  /// Set by the owner to abandon a transfer in flight (the agent is stopping).
  const std::atomic<bool>* stop = nullptr;
};

/// libcurl: redirects never followed (a redirect could carry the credentials elsewhere), only
/// http and https, TLS verified unless insecure_skip_verify.
std::unique_ptr<RedfishTransport> make_curl_redfish_transport(RedfishTransportOptions options);

/// Authentication over a transport: a session from the SessionService where the service has one
/// (logged in again on a 401, logged out by logout()), else HTTP basic auth. Not thread-safe.
class RedfishClient {
 public:
  RedfishClient(std::unique_ptr<RedfishTransport> transport, std::string user,
                std::string password);
  ~RedfishClient();
  RedfishClient(const RedfishClient&) = delete;
  RedfishClient& operator=(const RedfishClient&) = delete;

  /// The JSON object at `path`: transient errors for no answer, a status other than 200 or a
  /// 401 that a new login did not cure; malformed for a body that is not a JSON object.
  Result<nlohmann::json> get(const std::string& path);
  /// Deletes the session, if there is one.
  void logout();
  /// "session", "basic", or "none" before the first request.
  std::string_view auth() const;
  uint64_t logins() const { return logins_; }

 private:
  Result<bool> login();
  std::unique_ptr<RedfishTransport> transport_;
  std::string user_, password_;
  enum class Mode { unknown, session, basic } mode_ = Mode::unknown;
  std::string token_, session_path_, sessions_path_;
  uint64_t logins_ = 0;
};

/// `url` as scheme://host[:port] with no trailing slash, or malformed: it must be http or https,
/// hold no user info, query or fragment, and no path other than "/" or "/redfish/v1".
Result<std::string> redfish_base_url(const std::string& url);

}  // namespace wattprobe
