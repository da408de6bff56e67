#include "agent/tick/attribution_options.h"

#include <set>

namespace wattprobe {

const std::vector<Choice<IdlePolicy>>& idle_policies() {
  static const std::vector<Choice<IdlePolicy>> words{{"separate", IdlePolicy::separate},
                                                     {"proportional", IdlePolicy::proportional},
                                                     {"even", IdlePolicy::even}};
  return words;
}

OptionTable<AttributionOptions> attribution_option_table() {
  using A = AttributionOptions;
  OptionSpec<A> idle_watts{
      "idle-watts", "DOMAIN=W idle power per socket, overriding the learned estimate (repeatable)",
      [](A& a, const std::vector<OptionValue>& values) {
        static const std::set<std::string> domains{"package", "core", "uncore",  "dram",
                                                   "psys",    "gpu",  "platform"};
        for (const OptionValue& v : values) {
          const auto eq = v.value.find('=');
          if (eq == std::string::npos) refuse_value(v, "expected DOMAIN=WATTS");
          const std::string domain = v.value.substr(0, eq);
          if (!domains.count(domain)) refuse_value(v, "unknown domain \"" + domain + "\"");
          a.idle_watts[domain] =
              number_value(OptionValue{v.option, v.value.substr(eq + 1), v.origin}, 0, 100000);
        }
      },
      [](const A&) { return std::string(); }};
  idle_watts.repeatable = true;
  return {
      choice_option("idle-attribution", &A::idle_policy, idle_policies(), "where idle power goes"),
      std::move(idle_watts),
      choice_option("split-by", &A::split_by,
                    {{"auto", SplitKey::automatic},
                     {"cpu-time", SplitKey::cpu_time},
                     {"cycles", SplitKey::cycles}},
                    "what divides a domain's dynamic energy")
          .note(": cycles where counted"),
      duration_option("workload-expiry", &A::workload_expiry, std::chrono::seconds(1),
                      std::chrono::hours(24 * 30),
                      "drop a workload's series after it is gone this long"),
  };
}

}  // namespace wattprobe
