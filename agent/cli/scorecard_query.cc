#include "agent/cli/scorecard_query.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace wattprobe {
namespace {

Error bad_body(const std::string& detail) {
  return Error{ErrorKind::malformed, "query answer", detail};
}

/// Prometheus writes sample values as strings ("12.5", "NaN", "+Inf").
bool parse_value(const nlohmann::json& pair, double& out) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number() || !pair[1].is_string()) {
    return false;
  }
  const std::string& s = pair[1].get_ref<const std::string&>();
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

Result<PromAnswer> parse_prom_answer(std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad_body("not a JSON object");
  auto status = j.find("status");
  if (status == j.end() || !status->is_string()) return bad_body("no \"status\" string");
  PromAnswer answer;
  if (auto w = j.find("warnings"); w != j.end()) {
    if (!w->is_array()) return bad_body("\"warnings\" is not an array");
    for (const auto& text : *w) {
      if (!text.is_string()) return bad_body("a warning is not a string");
      answer.warnings.push_back(text.get<std::string>());
    }
  }
  if (*status != "success") {
    std::string type, error;
    if (auto t = j.find("errorType"); t != j.end() && t->is_string()) type = t->get<std::string>();
    if (auto e = j.find("error"); e != j.end() && e->is_string()) error = e->get<std::string>();
    return Error{ErrorKind::malformed, "query",
                 "status " + status->dump() + (type.empty() ? "" : ", " + type) +
                     (error.empty() ? "" : ": " + error)};
  }
  auto data = j.find("data");
  if (data == j.end() || !data->is_object()) return bad_body("no \"data\" object");
  auto type = data->find("resultType");
  auto result = data->find("result");
  if (type == data->end() || !type->is_string() || result == data->end()) {
    return bad_body("\"data\" lacks resultType or result");
  }
  if (*type == "scalar") {
    PromSample s;
    if (!parse_value(*result, s.value)) return bad_body("scalar result is not [time, \"value\"]");
    answer.samples.push_back(std::move(s));
    return answer;
  }
  if (*type != "vector") {
    return bad_body("resultType " + type->dump() + ", expected \"vector\" (an instant query)");
  }
  if (!result->is_array()) return bad_body("\"result\" is not an array");
  for (const auto& element : *result) {
    if (!element.is_object()) return bad_body("a result element is not an object");
    PromSample s;
    auto metric = element.find("metric");
    if (metric != element.end()) {
      if (!metric->is_object()) return bad_body("\"metric\" is not an object");
      for (const auto& [name, value] : metric->items()) {
        if (!value.is_string()) return bad_body("label " + name + " is not a string");
        s.labels.emplace(name, value.get<std::string>());
      }
    }
    auto value = element.find("value");
    if (value == element.end() || !parse_value(*value, s.value)) {
      return bad_body("a sample's \"value\" is not [time, \"number\"]");
    }
    answer.samples.push_back(std::move(s));
  }
  return answer;
}

std::string url_encode(std::string_view text) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

PromClient::PromClient(PromConnection connection)
    : connection_(std::move(connection)),
      http_(HttpOptions{std::min(connection_.timeout_s, 10.0), connection_.timeout_s,
                        // A month's answer grouped by workload over a large fleet is big, but
                        // not unbounded: 256 MiB is far past any sane grouping.
                        256u << 20, connection_.ca_file}) {}

Result<PromAnswer> PromClient::instant(const std::string& promql, int64_t time_ms) {
  std::string base = connection_.url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  HttpGetRequest request;
  request.url = base + "/api/v1/query?query=" + url_encode(promql) +
                "&time=" + std::to_string(time_ms / 1000);
  if (!connection_.bearer_token.empty()) {
    request.secret_headers.push_back("Authorization: Bearer " + connection_.bearer_token);
  }
  request.basic_user = connection_.basic_user;
  request.basic_password = connection_.basic_password;
  HttpGetResult response = http_.get(request);
  const std::string where = redact_url(base) + "/api/v1/query";
  if (!response.ok()) {
    return Error{ErrorKind::transient, where, response.reason + ": " + response.detail};
  }
  auto answer = parse_prom_answer(response.body);
  if (response.status < 200 || response.status > 299) {
    std::string why = "HTTP " + std::to_string(response.status);
    if (!answer.ok() && answer.error().path == "query") why += ": " + answer.error().detail;
    return Error{ErrorKind::transient, where, why};
  }
  if (!answer.ok()) return Error{answer.error().kind, where, answer.error().detail};
  return answer;
}

}  // namespace wattprobe
