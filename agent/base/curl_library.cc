#include "agent/base/curl_library.h"

#include <string>

#include "agent/base/runtime_library.h"

namespace wattprobe {
namespace {

/// The soname of the headers built against (Debian 12: libcurl 7.88, package libcurl4).
constexpr const char* kCurlLibrary = "libcurl.so.4";

Result<CurlApi> load_curl() {
  std::string why;
  auto lib = RuntimeLibrary::open(kCurlLibrary, "libcurl", "apt install libcurl4", &why);
  if (!lib) return Error{ErrorKind::unsupported, kCurlLibrary, why};
  auto bind = [&](auto& slot, const char* name) { lib->bind(slot, name); };
  CurlApi c{};
  decltype(&::curl_global_init) global_init = nullptr;
  bind(global_init, "curl_global_init");
  bind(c.easy_init, "curl_easy_init");
  bind(c.easy_setopt, "curl_easy_setopt");
  bind(c.easy_perform, "curl_easy_perform");
  bind(c.easy_getinfo, "curl_easy_getinfo");
  bind(c.easy_cleanup, "curl_easy_cleanup");
  bind(c.easy_reset, "curl_easy_reset");
  bind(c.easy_strerror, "curl_easy_strerror");
  bind(c.slist_append, "curl_slist_append");
  bind(c.slist_free_all, "curl_slist_free_all");
  bind(c.multi_init, "curl_multi_init");
  bind(c.multi_add_handle, "curl_multi_add_handle");
  bind(c.multi_remove_handle, "curl_multi_remove_handle");
  bind(c.multi_perform, "curl_multi_perform");
  bind(c.multi_poll, "curl_multi_poll");
  bind(c.multi_info_read, "curl_multi_info_read");
  bind(c.multi_cleanup, "curl_multi_cleanup");
  if (!lib->missing().empty())
    return Error{ErrorKind::unsupported, kCurlLibrary, "lacks " + lib->missing()};
  // Not thread-safe in libcurl, and reference counted: once here, under the static's guard, for
  // every user in the process.
  if (CURLcode rc = global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
    return Error{ErrorKind::unsupported, kCurlLibrary,
                 "curl_global_init failed (code " + std::to_string(static_cast<int>(rc)) + ")"};
  return c;
}

}  // namespace

const Result<CurlApi>& curl_api() {
  static const Result<CurlApi> loaded = load_curl();
  return loaded;
}

}  // namespace wattprobe
