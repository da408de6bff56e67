#pragma once

#include <filesystem>
#include <string>

#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// `host`, inside a VM: the intensity in force on the VM's host, from the energy.json its agent
/// writes (docs/guest-energy.md; --grid-file, which defaults to --host-energy-path), so the
/// guest's grams use the host's figure. Signal "host": the host's own signal is not carried.
class HostGridProvider : public GridProvider {
 public:
  HostGridProvider(std::filesystem::path path, std::string zone);
  std::string_view name() const override { return "host"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  std::filesystem::path path_;
  std::string zone_;
};

}  // namespace wattprobe
