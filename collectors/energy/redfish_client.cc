#include "collectors/energy/redfish_client.h"

#include <cctype>

#include "agent/base/curl_library.h"
#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

struct Transfer {
  std::string body;
  std::size_t cap = 0;
  bool over_cap = false;
  std::string token, location;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->body.size() + n > t->cap) {
    t->over_cap = true;
    return 0;  // curl aborts with CURLE_WRITE_ERROR
  }
  t->body.append(data, n);
  return n;
}

bool header_is(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) !=
        std::tolower(static_cast<unsigned char>(name[i])))
      return false;
  }
  return true;
}

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  std::string_view line(data, n);
  if (header_is(line, "X-Auth-Token")) t->token = std::string(trim(line.substr(13)));
  if (header_is(line, "Location")) t->location = std::string(trim(line.substr(9)));
  return n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* stop = static_cast<const std::atomic<bool>*>(user);
  return stop && stop->load() ? 1 : 0;
}

class CurlTransport : public RedfishTransport {
 public:
  explicit CurlTransport(RedfishTransportOptions o) : o_(std::move(o)) {
    if (const auto& api = curl_api()) curl_ = api->easy_init();
  }
  ~CurlTransport() override {
    if (curl_) curl_api()->easy_cleanup(curl_);
  }

  RedfishAnswer exchange(const RedfishRequest& r) override {
    RedfishAnswer out;
    const auto& lib = curl_api();
    if (!curl_) {
      out.reason = "transport";
      out.detail = lib ? "curl_easy_init failed" : lib.error().message();
      return out;
    }
    const CurlApi& api = *lib;
    CURL* c = curl_;
    api.easy_reset(c);
    Transfer t;
    t.cap = o_.max_body_bytes;
    const std::string url = o_.base_url + r.path;
    api.easy_setopt(c, CURLOPT_URL, url.c_str());
    api.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    api.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    api.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    api.easy_setopt(c, CURLOPT_PROTOCOLS, CURLPROTO_HTTP | CURLPROTO_HTTPS);
#endif
    const long timeout_ms = static_cast<long>(o_.timeout_s * 1000);
    api.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    api.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    api.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    api.easy_setopt(c, CURLOPT_WRITEDATA, &t);
    api.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    api.easy_setopt(c, CURLOPT_HEADERDATA, &t);
    api.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    api.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    api.easy_setopt(c, CURLOPT_XFERINFODATA, o_.stop);
    if (!o_.ca_file.empty()) api.easy_setopt(c, CURLOPT_CAINFO, o_.ca_file.c_str());
    if (o_.insecure_skip_verify) {
      api.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
      api.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    curl_slist* headers = nullptr;
    headers = api.slist_append(headers, "Accept: application/json");
    std::string token_header;
    if (!r.auth_token.empty()) {
      token_header = "X-Auth-Token: " + r.auth_token;
      headers = api.slist_append(headers, token_header.c_str());
    }
    if (r.method == "POST") {
      headers = api.slist_append(headers, "Content-Type: application/json");
      api.easy_setopt(c, CURLOPT_POST, 1L);
      api.easy_setopt(c, CURLOPT_POSTFIELDS, r.body.c_str());
      api.easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
    } else if (r.method == "DELETE") {
      api.easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    api.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    if (r.basic) {
      api.easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
      api.easy_setopt(c, CURLOPT_USERNAME, o_.user.c_str());
      api.easy_setopt(c, CURLOPT_PASSWORD, o_.password.c_str());
    }
    CURLcode rc = api.easy_perform(c);
    api.slist_free_all(headers);
    // Curl keeps copies of what it was given; the next reset wipes the credentials' copies.
    if (rc != CURLE_OK) {
      switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
          out.reason = "timeout";
          break;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
          out.reason = "connect";
          break;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
          out.reason = "tls";
          break;
        case CURLE_ABORTED_BY_CALLBACK:
          out.reason = "stopped";
          break;
        default:
          out.reason = t.over_cap ? "too_large" : "transport";
      }
      out.detail = std::string(api.easy_strerror(rc));
      if (t.over_cap)
        out.detail = "answer larger than " + std::to_string(o_.max_body_bytes) + " bytes";
      return out;
    }
    api.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.status);
    out.body = std::move(t.body);
    out.auth_token = std::move(t.token);
    out.location = std::move(t.location);
    return out;
  }

 private:
  RedfishTransportOptions o_;
  CURL* curl_ = nullptr;
};

Error failed(const std::string& path, const RedfishAnswer& a) {
  if (!a.ok()) return Error{ErrorKind::transient, path, a.reason + ": " + a.detail};
  return Error{ErrorKind::transient, path, "HTTP status " + std::to_string(a.status)};
}

// Only the path of a session's Location: a BMC that answered with an absolute URL must not make
// the agent send its token to another host.
std::string session_path(const std::string& location) {
  if (location.empty() || location[0] == '/') return location;
  auto scheme = location.find("://");
  if (scheme == std::string::npos) return {};
  auto slash = location.find('/', scheme + 3);
  return slash == std::string::npos ? std::string() : location.substr(slash);
}

}  // namespace

std::unique_ptr<RedfishTransport> make_curl_redfish_transport(RedfishTransportOptions options) {
  return std::make_unique<CurlTransport>(std::move(options));
}

RedfishClient::RedfishClient(std::unique_ptr<RedfishTransport> transport, std::string user,
                             std::string password)
    : transport_(std::move(transport)), user_(std::move(user)), password_(std::move(password)) {}

RedfishClient::~RedfishClient() { logout(); }

std::string_view RedfishClient::auth() const {
  switch (mode_) {
    case Mode::session:
      return "session";
    case Mode::basic:
      return "basic";
    default:
      return "none";
  }
}

Result<bool> RedfishClient::login() {
  if (sessions_path_.empty()) {
    // The service root answers without credentials (Redfish spec, "Service root"); it says
    // where the sessions live, if the service has them.
    RedfishRequest root{"GET", "/redfish/v1", {}, {}, false};
    RedfishAnswer a = transport_->exchange(root);
    if (!a.ok() || a.status != 200) return failed("/redfish/v1", a);
    auto doc = nlohmann::json::parse(a.body, nullptr, false);
    if (!doc.is_object()) return Error{ErrorKind::malformed, "/redfish/v1", "not a JSON object"};
    std::string sessions;
    if (auto l = doc.find("Links"); l != doc.end() && l->is_object()) {
      if (auto s = l->find("Sessions"); s != l->end() && s->is_object()) {
        if (auto id = s->find("@odata.id"); id != s->end() && id->is_string())
          sessions = id->get<std::string>();
      }
    }
    if (sessions.empty() || sessions[0] != '/') {
      mode_ = Mode::basic;
      return true;
    }
    sessions_path_ = sessions;
  }
  nlohmann::json creds{{"UserName", user_}, {"Password", password_}};
  RedfishRequest post{"POST", sessions_path_, creds.dump(), {}, false};
  RedfishAnswer a = transport_->exchange(post);
  if (!a.ok()) return failed(sessions_path_, a);
  if ((a.status == 200 || a.status == 201) && !a.auth_token.empty()) {
    mode_ = Mode::session;
    token_ = a.auth_token;
    session_path_ = session_path(a.location);
    ++logins_;
    return true;
  }
  if (a.status == 404 || a.status == 405 || a.status == 501) {
    mode_ = Mode::basic;  // a service without sessions: basic auth on every request
    return true;
  }
  if (a.status == 401 || a.status == 403)
    return Error{
        ErrorKind::permission, sessions_path_,
        "login refused (HTTP " + std::to_string(a.status) + "): check the user and password files"};
  return failed(sessions_path_, a);
}

Result<nlohmann::json> RedfishClient::get(const std::string& path) {
  if (mode_ == Mode::unknown) {
    auto in = login();
    if (!in) return in.error();
  }
  RedfishAnswer a;
  for (int attempt = 0; attempt < 2; ++attempt) {
    RedfishRequest r{
        "GET", path, {}, mode_ == Mode::session ? token_ : std::string(), mode_ == Mode::basic};
    a = transport_->exchange(r);
    if (!a.ok()) return failed(path, a);
    if (a.status != 401 || mode_ != Mode::session || attempt == 1) break;
    // The session expired or the BMC restarted: one new login, then the request again.
    token_.clear();
    session_path_.clear();
    auto in = login();
    if (!in) return in.error();
  }
  if (a.status == 401 || a.status == 403)
    return Error{ErrorKind::permission, path,
                 "HTTP " + std::to_string(a.status) + ": the account may not read this"};
  if (a.status != 200) return failed(path, a);
  auto doc = nlohmann::json::parse(a.body, nullptr, false);
  if (!doc.is_object())
    return Error{ErrorKind::malformed, path,
                 doc.is_discarded() ? "not JSON" : "JSON, but not an object"};
  return doc;
}

void RedfishClient::logout() {
  if (mode_ == Mode::session && !session_path_.empty()) {
    RedfishRequest del{"DELETE", session_path_, {}, token_, false};
    (void)transport_->exchange(del);
  }
  token_.clear();
  session_path_.clear();
  if (mode_ == Mode::session) mode_ = Mode::unknown;
}

Result<std::string> redfish_base_url(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return Error{ErrorKind::malformed, "redfish-url", why};
  };
  std::string_view u = url;
  std::size_t scheme = u.find("://");
  if (scheme == std::string_view::npos) return bad("expected https://HOST[:PORT]");
  std::string_view s = u.substr(0, scheme);
  if (s != "https" && s != "http") return bad("expected an https:// (or http://) URL");
  std::string_view rest = u.substr(scheme + 3);
  std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.empty()) return bad("no host");
  if (authority.find('@') != std::string_view::npos)
    return bad(
        "credentials in the URL: give them with --redfish-user-file and "
        "--redfish-password-file");
  if (u.find_first_of("?#") != std::string_view::npos) return bad("no query or fragment allowed");
  if (!path.empty() && path != "/" && path != "/redfish/v1" && path != "/redfish/v1/")
    return bad("expected no path, or /redfish/v1");
  return std::string(s) + "://" + std::string(authority);
}

}  // namespace wattprobe
