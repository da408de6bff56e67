#pragma once

#include <string>
#include <string_view>

#include "agent/base/result.h"

namespace wattprobe {

/// Every secret the agent sends (the remote-write bearer token and password, the grid API key)
/// goes into an HTTP header, where a CR or LF would end the line and let the secret's holder
/// add headers of their own, and a NUL would cut it short. So a secret is one line: whitespace
/// around it is dropped (the newline `echo` and editors leave), and CR, LF or NUL inside it is
/// refused. Errors name the file or variable and the byte offset, never the value.

/// The secret held in `path` (at most 16 KiB): absent or permission errors from reading it,
/// malformed when it is empty or holds CR, LF or NUL.
Result<std::string> read_secret_file(const std::string& path);

/// The secret in `text`, which came from `where` (a file, or "$NAME" for an environment
/// variable): trimmed, refused when empty or holding CR, LF or NUL.
Result<std::string> secret_from_text(std::string_view text, const std::string& where);

/// For start-up: an error only when `path` can be read and holds a secret that would be refused
/// for its characters. A missing or unreadable file is left to the reader that needs it, which
/// reports it while the agent runs (a token can be mounted after start).
Result<bool> check_secret_file(const std::string& path);

/// True for an HTTP header name that carries a credential: Authorization, Proxy-Authorization,
/// Cookie, or a name holding "token", "key", "secret", "password" or "auth" (any case).
bool is_credential_header(std::string_view name);

/// True when an http(s) URL carries credentials in its authority ("user:password@host").
bool url_has_credentials(std::string_view url);

}  // namespace wattprobe
