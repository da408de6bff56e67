#include "agent/state/ledger_options.h"

namespace wattprobe {

OptionTable<LedgerOptions> ledger_option_table() {
  using L = LedgerOptions;
  return {
      whole_option("ledger-retention", &L::retention_days, 0, 100000,
                   "delete ledger day files older than this many days")
          .note("; 0 keeps all"),
      byte_cap_option("ledger-max-bytes", &L::max_bytes,
                      "delete the oldest closed ledger day files past this many bytes in all")
          .note(" = 1 GiB; 0 no cap"),
      {"ledger-period",
       "period each ledger line sums, dividing a day, 1s to 1h (shorter for tests)",
       [](L& l, const std::vector<OptionValue>& v) {
         const auto d = duration_value(v.back(), std::chrono::seconds(1), std::chrono::hours(1));
         // Whole seconds that divide a day keep every period inside one UTC day file.
         if (d.count() % 1000 != 0 || 86'400'000 % d.count() != 0) {
           refuse_value(v.back(),
                        "expected whole seconds that divide a day, such as 1s, 10s, 1m, 5m");
         }
         l.period = std::chrono::duration_cast<std::chrono::seconds>(d);
       },
       [](const L& l) { return option_detail::duration_text(l.period); }},
  };
}

}  // namespace wattprobe
