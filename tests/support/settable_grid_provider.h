#pragma once

#include <string_view>

#include "agent/carbon/grid/intensity.h"

namespace wattprobe::testing {

/// A grid provider whose intensity the test sets between ticks, as a provider refresh would.
class SettableProvider : public GridProvider {
 public:
  explicit SettableProvider(double* value) : value_(value) {}
  std::string_view name() const override { return "electricitymaps"; }
  GridFetch fetch(int64_t now_ms) override {
    GridFetch f;
    f.reading = IntensityReading{*value_, "DE", "average", now_ms, {}, {}};
    return f;
  }

 private:
  double* value_;
};

}  // namespace wattprobe::testing
