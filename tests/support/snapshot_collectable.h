#pragma once

#include <prometheus/collectable.h>

#include <functional>
#include <memory>

#include "agent/base/snapshot.h"

namespace wattprobe::testing {

/// The snapshot through prometheus-cpp's Collectable, as /metrics was served before
/// exporters/prometheus_text.h: the reference the renderer's tests and benchmark compare with.
std::shared_ptr<prometheus::Collectable> make_snapshot_collectable(
    std::function<SnapshotPtr()> snapshot);

}  // namespace wattprobe::testing
