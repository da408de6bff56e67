#include "agent/carbon/grid/host_provider.h"

#include <system_error>

#include "agent/base/guest_energy_file.h"
#include "agent/base/text_file.h"

namespace wattprobe {

HostGridProvider::HostGridProvider(std::filesystem::path path, std::string zone)
    : path_(std::move(path)), zone_(std::move(zone)) {}

GridFetch HostGridProvider::fetch(int64_t) {
  std::error_code ec;
  const std::filesystem::path file =
      std::filesystem::is_directory(path_, ec) ? path_ / kGuestEnergyFileName : path_;
  auto text = read_text(file, kGuestEnergyMaxBytes);
  if (!text.ok())
    return GridFetch::failure(std::string(to_string(text.error().kind)), text.error());
  auto parsed = parse_guest_energy(*text, file.string());
  if (!parsed.ok()) return GridFetch::failure("malformed", parsed.error());
  if (!parsed->grid_intensity) {
    return GridFetch::failure(
        "absent", Error{ErrorKind::absent, file.string(), "the host knows no grid intensity yet"});
  }
  IntensityReading r;
  r.grams_per_kwh = *parsed->grid_intensity;
  r.zone = zone_;
  r.signal = "host";
  r.time_ms = parsed->host_time_ms;
  GridFetch f;
  f.reading = std::move(r);
  return f;
}

}  // namespace wattprobe
