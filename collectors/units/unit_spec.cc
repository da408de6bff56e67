#include "collectors/units/unit_spec.h"

namespace wattprobe {

OptionTable<UnitOptions> unit_option_table() {
  return {duration_option("unit-window", &UnitOptions::window, std::chrono::seconds(10),
                          std::chrono::hours(1),
                          "window the per-unit energy and CO2e divide ([unit.NAME] sections)")};
}

}  // namespace wattprobe
