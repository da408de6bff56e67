// The guest energy file (energy.json, docs/guest-energy.md) a VM reads from its host: a guest's
// own parser facing a file that whoever can write the share controls. A file it accepts must
// write back (to_json) to one it accepts again, with the same figures.
#include "agent/base/guest_energy_file.h"

#include <string>

#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wattprobe;
  auto parsed = parse_guest_energy(fuzz::text(data, size), "energy.json");
  if (!parsed.ok()) return 0;
  const std::string written = to_json(*parsed);
  // Indented, an accepted file near the size cap may come out past it; that is no parser bug.
  if (written.size() > kGuestEnergyMaxBytes) return 0;
  auto again = parse_guest_energy(written, "energy.json");
  if (!again.ok()) __builtin_trap();
  if (again->sequence != parsed->sequence || again->domains.size() != parsed->domains.size())
    __builtin_trap();
  return 0;
}
