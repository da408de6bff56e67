#include "agent/base/flag_args.h"

#include "agent/base/usage_error.h"

namespace wattprobe {

std::map<std::string, std::string> parse_flag_args(const std::vector<std::string>& args,
                                                   const std::set<std::string>& known) {
  std::map<std::string, std::string> given;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0) throw UsageError("unexpected argument \"" + a + "\"");
    std::string name = a.substr(2), value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (!known.count(name)) throw UsageError("unknown option \"" + a + "\"");
      if (i + 1 == args.size()) throw UsageError("--" + name + " needs a value");
      value = args[++i];
    }
    if (!known.count(name)) throw UsageError("unknown option \"--" + name + "\"");
    if (!given.emplace(name, value).second) throw UsageError("--" + name + " given twice");
  }
  return given;
}

}  // namespace wattprobe
