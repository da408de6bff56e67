#include "agent/base/flag_args.h"

#include "agent/base/usage_error.h"
#include "agent/base/utc_time.h"

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

void refuse_flag(std::string_view flag, std::string_view value, std::string_view why) {
  throw UsageError("invalid value \"" + std::string(value) + "\" for --" + std::string(flag) +
                   ": " + std::string(why));
}

FlagPeriod flag_period(std::map<std::string, std::string>& given, int64_t now_ms) {
  FlagPeriod p{now_ms - kMsPerUtcDay, now_ms};
  const char* kTimeForms = "expected 2026-11-23T10:00:00Z, 2026-11-23, now, or -24h (before now)";
  if (given.count("until")) {
    auto t = parse_utc_time_or_ago(given["until"], now_ms);
    if (!t) refuse_flag("until", given["until"], kTimeForms);
    p.until_ms = *t;
    if (!given.count("since")) p.since_ms = p.until_ms - kMsPerUtcDay;
  }
  if (given.count("since")) {
    auto t = parse_utc_time_or_ago(given["since"], now_ms);
    if (!t) refuse_flag("since", given["since"], kTimeForms);
    p.since_ms = *t;
  }
  if (p.since_ms >= p.until_ms) {
    refuse_flag("since", given.count("since") ? given["since"] : format_utc_instant(p.since_ms),
                "the period is empty: --since must be before --until (" +
                    format_utc_instant(p.until_ms) + ")");
  }
  return p;
}

}  // namespace wattprobe
