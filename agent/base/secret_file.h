#pragma once

#include <string>
#include <string_view>

#include "agent/base/held_file.h"
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

/// As read_secret_file, but where `path` cannot be opened for permission (the agent has dropped
/// to an unprivileged user and the file is root's), the copy of it held open from start-up
/// (HeldFile::open before the drop) is read instead: an edit in place is still seen, a file
/// replaced under the same name is not until the agent can open it (make it readable by the
/// agent's user, or give it through systemd's LoadCredential=).
Result<std::string> read_secret_file(const std::string& path, const HeldFile& held);

/// For start-up: an error only when `path` can be read and holds a secret that would be refused
/// for its characters. A missing or unreadable file is left to the reader that needs it, which
/// reports it while the agent runs (a token can be mounted after start).
Result<bool> check_secret_file(const std::string& path);

/// True for an HTTP header name that carries a credential: Authorization, Proxy-Authorization,
/// Cookie, or a name holding "token", "key", "secret", "password" or "auth" (any case).
bool is_credential_header(std::string_view name);

/// True when an http(s) URL carries credentials in its authority ("user:password@host").
bool url_has_credentials(std::string_view url);

/// The name of the first query parameter of `url` that looks like a secret (token, key,
/// api_key, secret, password, passwd, pwd, auth, sig, signature, credential; any case), or
/// empty. A query ends up in proxy and server access logs, where a header or a file does not.
std::string secret_query_parameter(std::string_view url);

}  // namespace wattprobe
