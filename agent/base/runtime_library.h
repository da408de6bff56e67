#pragma once

#include <optional>
#include <string>
#include <type_traits>

namespace wattprobe {

/// A shared library opened at run time (dlopen) rather than linked, so an agent that never uses
/// it never maps it (libcurl's 28 dependencies, libfreeipmi): its functions bound by name, and
/// every missing one named at once. Kept open for the process's life.
class RuntimeLibrary {
 public:
  /// Opens `soname`, or none with `*why` saying what failed and what to install (`install`,
  /// e.g. "apt install libcurl4").
  static std::optional<RuntimeLibrary> open(const char* soname, const std::string& what,
                                            const std::string& install, std::string* why);

  /// Binds `slot` (a function or object pointer) to the symbol `name`; a missing one is noted.
  template <typename T>
  void bind(T& slot, const char* name) {
    slot = reinterpret_cast<std::remove_reference_t<T>>(symbol(name));
  }

  /// Every symbol bind() did not find, "a, b"; empty when all were.
  const std::string& missing() const { return missing_; }

 private:
  explicit RuntimeLibrary(void* handle) : handle_(handle) {}
  void* symbol(const char* name);

  void* handle_;
  std::string missing_;
};

}  // namespace wattprobe
