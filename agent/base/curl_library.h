#pragma once

// libcurl's types and constants come from its header; its functions come from curl_api(), which
// opens the library at the first HTTP request. Linked, libcurl pulled in ~28 more shared libraries
// (gnutls, krb5, ldap, ssh2, …) whose pages were resident in every agent, where the default
// daemon never makes a request (issue 25's RSS goal).
#include <curl/curl.h>

#include "agent/base/result.h"

namespace wattprobe {

struct CurlApi {
  decltype(&::curl_easy_init) easy_init;
  // Variadic in libcurl: the option's argument is passed through as-is, as with the function.
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  decltype(&::curl_easy_perform) easy_perform;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_reset) easy_reset;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
  decltype(&::curl_multi_init) multi_init;
  decltype(&::curl_multi_add_handle) multi_add_handle;
  decltype(&::curl_multi_remove_handle) multi_remove_handle;
  decltype(&::curl_multi_perform) multi_perform;
  decltype(&::curl_multi_poll) multi_poll;
  decltype(&::curl_multi_info_read) multi_info_read;
  decltype(&::curl_multi_cleanup) multi_cleanup;
};

/// libcurl, opened and curl_global_init'ed once, on first use (thread-safe); the same answer
/// after. An error names the library and the Debian package to install.
const Result<CurlApi>& curl_api();

}  // namespace wattprobe
