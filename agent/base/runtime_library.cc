#include "agent/base/runtime_library.h"

#include <dlfcn.h>

namespace wattprobe {

std::optional<RuntimeLibrary> RuntimeLibrary::open(const char* soname, const std::string& what,
                                                   const std::string& install, std::string* why) {
  void* handle = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);  // kept for the process's life
  if (!handle) {
    *why = "cannot load " + what + " (Debian: " + install + "): " + ::dlerror();
    return std::nullopt;
  }
  return RuntimeLibrary(handle);
}

void* RuntimeLibrary::symbol(const char* name) {
  void* found = ::dlsym(handle_, name);
  if (!found) missing_ += std::string(missing_.empty() ? "" : ", ") + name;
  return found;
}

}  // namespace wattprobe
