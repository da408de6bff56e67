#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "agent/carbon/grid/intensity.h"

namespace wattprobe {

/// A schedule of timestamped intensities (history and forecast) from a local file, re-read when
/// its modification time or size changes. Two formats:
///  - CSV, one `time,grams_per_kwh` row per line; time is ISO 8601 UTC or Unix seconds; `#`
///    comments, blank lines and a first header row are allowed.
///  - JSON (first character `[` or `{`): an array of {"datetime", "carbonIntensity"} or an
///    object with such an array under "forecast", the shape Electricity Maps returns.
/// A malformed row is reported (file and line) and skipped; the other rows are kept.
class FileGridProvider : public GridProvider {
 public:
  FileGridProvider(std::filesystem::path path, std::string zone);
  std::string_view name() const override { return "file"; }
  GridFetch fetch(int64_t now_ms) override;

 private:
  std::filesystem::path path_;
  std::string zone_;
  int64_t seen_mtime_ns_ = -1;
  uintmax_t seen_size_ = 0;
  std::vector<IntensityPoint> points_;
  std::vector<Error> row_errors_;
};

/// Parses a schedule; returns the good points sorted by time and appends one error per bad row.
std::vector<IntensityPoint> parse_intensity_schedule(std::string_view text, const std::string& path,
                                                     std::vector<Error>& row_errors);

}  // namespace wattprobe
