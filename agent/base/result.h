#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace wattprobe {

/// Why a read failed. The kind is the `reason` label of
/// wattprobe_agent_collector_errors_total, so its spelling is part of the metric contract.
enum class ErrorKind { absent, permission, malformed, transient, unsupported };

std::string_view to_string(ErrorKind kind);

struct Error {
  ErrorKind kind = ErrorKind::transient;
  std::string path;    // file or endpoint the error is about; may be empty
  std::string detail;  // human words: what was found, what was expected

  /// One line for logs and `doctor`: "<path>: <kind>: <detail>".
  std::string message() const;
};

/// A configured value that cannot be used: the option's name as the path, what is wrong as the
/// detail. Every validate() says so this way.
inline Error invalid(std::string option, std::string detail) {
  return Error{ErrorKind::malformed, std::move(option), std::move(detail)};
}

/// Maps an errno from open/read/pread to an Error kind.
Error error_from_errno(int err, std::string path, std::string_view what);

/// Recoverable errors are values (docs/architecture.md): the tick loop never throws.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<Error>(v_); }

 private:
  std::variant<T, Error> v_;
};

}  // namespace wattprobe
