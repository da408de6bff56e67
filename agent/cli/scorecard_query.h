#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/http_client.h"
#include "agent/base/result.h"

namespace wattprobe {

/// One element of an instant vector: its labels and its value.
struct PromSample {
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// What /api/v1/query answered. `warnings` (Prometheus, Thanos and Mimir put partial answers
/// there: a store that did not answer, a query cut short) make the answer partial: the caller
/// marks every figure built from it, never sums it as if whole.
struct PromAnswer {
  std::vector<PromSample> samples;
  std::vector<std::string> warnings;
  bool partial() const { return !warnings.empty(); }
};

/// Parses the JSON body of an instant query strictly: status "success", resultType "vector"
/// (or "scalar", as one sample without labels), every value a [time, "number"] pair. An
/// "error" status gives its errorType and error. Any other shape is malformed, named.
Result<PromAnswer> parse_prom_answer(std::string_view body);

struct PromConnection {
  std::string url;  // base URL: http(s)://host:port[/prefix], /api/v1/query is appended
  std::string ca_file;
  std::string bearer_token;  // read from --prometheus-bearer-token-file
  std::string basic_user;
  std::string basic_password;
  double timeout_s = 60;
};

/// The form-encoding of a query parameter (RFC 3986 unreserved characters kept).
std::string url_encode(std::string_view text);

/// Instant queries against any server with Prometheus's HTTP API (Prometheus, Thanos Query,
/// Mimir, VictoriaMetrics). An error's path is the endpoint (credentials redacted) and its detail
/// says what failed: connection, timeout, HTTP status with the server's error, or the body.
class PromClient {
 public:
  explicit PromClient(PromConnection connection);
  /// `promql` evaluated at `time_ms` (whole seconds are sent).
  Result<PromAnswer> instant(const std::string& promql, int64_t time_ms);

 private:
  PromConnection connection_;
  HttpClient http_;
};

}  // namespace wattprobe
