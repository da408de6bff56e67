#include "agent/carbon/grid/file_provider.h"

#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <nlohmann/json.hpp>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

using nlohmann::json;

std::optional<int64_t> parse_time_field(std::string_view t) {
  if (auto iso = parse_utc_time(t)) return iso;
  int64_t secs = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), secs);
  // Up to 9999-12-31T23:59:59Z: a larger number is no time, and its milliseconds would overflow.
  constexpr int64_t kLastSecond = 253402300799;
  if (ec != std::errc() || end != t.data() + t.size() || secs < 0 || secs > kLastSecond) {
    return std::nullopt;
  }
  return secs * 1000;
}

void parse_json(std::string_view text, const std::string& path, std::vector<IntensityPoint>& out,
                std::vector<Error>& errors) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    errors.push_back({ErrorKind::malformed, path, "not valid JSON"});
    return;
  }
  const json* list = &j;
  if (j.is_object()) {
    auto f = j.find("forecast");
    if (f == j.end()) {
      errors.push_back({ErrorKind::malformed, path, "JSON object without a \"forecast\" array"});
      return;
    }
    list = &*f;
  }
  if (!list->is_array()) {
    errors.push_back({ErrorKind::malformed, path, "expected an array of points"});
    return;
  }
  for (size_t i = 0; i < list->size(); ++i) {
    const json& e = (*list)[i];
    std::string at = "entry " + std::to_string(i) + ": ";
    if (!e.is_object()) {
      errors.push_back({ErrorKind::malformed, path, at + "not an object"});
      continue;
    }
    auto dt = e.find("datetime");
    auto ci = e.find("carbonIntensity");
    if (dt == e.end() || !dt->is_string()) {
      errors.push_back({ErrorKind::malformed, path, at + "\"datetime\" missing or not a string"});
      continue;
    }
    if (ci == e.end() || !ci->is_number()) {
      errors.push_back(
          {ErrorKind::malformed, path, at + "\"carbonIntensity\" missing or not a number"});
      continue;
    }
    auto t = parse_utc_time(dt->get<std::string>());
    if (!t) {
      errors.push_back(
          {ErrorKind::malformed, path, at + "\"datetime\" is not an ISO 8601 UTC time"});
      continue;
    }
    double v = ci->get<double>();
    if (auto why = check_intensity(v)) {
      errors.push_back({ErrorKind::malformed, path, at + "\"carbonIntensity\" " + *why});
      continue;
    }
    std::optional<double> cfe;
    if (auto ff = e.find("fossilFreePercentage"); ff != e.end() && !ff->is_null()) {
      if (!ff->is_number()) {
        errors.push_back(
            {ErrorKind::malformed, path, at + "\"fossilFreePercentage\" is not a number"});
        continue;
      }
      if (auto why = check_cfe_percent(ff->get<double>())) {
        errors.push_back({ErrorKind::malformed, path, at + "\"fossilFreePercentage\" " + *why});
        continue;
      }
      cfe = ff->get<double>();
    }
    out.push_back({*t, v, cfe});
  }
}

void parse_csv(std::string_view text, const std::string& path, std::vector<IntensityPoint>& out,
               std::vector<Error>& errors) {
  size_t line_no = 0;
  bool first_data_line = true;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    std::string at = "line " + std::to_string(line_no) + ": ";
    // time,grams_per_kwh[,cfe_percent]
    std::vector<std::string_view> cells;
    for (std::string_view rest = line;;) {
      size_t comma = rest.find(',');
      cells.push_back(trim(rest.substr(0, comma)));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
    if (cells.size() < 2 || cells.size() > 3) {
      errors.push_back({ErrorKind::malformed, path,
                        at + quote_for_error(line) + " is not `time,grams_per_kwh[,cfe_percent]`"});
      first_data_line = false;
      continue;
    }
    std::string_view ts = cells[0];
    std::string_view vs = cells[1];
    auto t = parse_time_field(ts);
    auto v = parse_double(vs, path);
    if (first_data_line) {
      first_data_line = false;
      if (!t && !v) continue;  // a header row
    }
    if (!t) {
      errors.push_back(
          {ErrorKind::malformed, path,
           at + "time " + quote_for_error(ts) + " is neither ISO 8601 UTC nor Unix seconds"});
      continue;
    }
    if (!v) {
      errors.push_back({ErrorKind::malformed, path,
                        at + "intensity " + quote_for_error(vs) + " is not a number"});
      continue;
    }
    if (auto why = check_intensity(*v)) {
      errors.push_back({ErrorKind::malformed, path, at + "intensity " + *why});
      continue;
    }
    std::optional<double> cfe;
    // An empty third cell is a period whose carbon-free share is not known.
    if (cells.size() == 3 && !cells[2].empty()) {
      auto c = parse_double(cells[2], path);
      if (!c) {
        errors.push_back({ErrorKind::malformed, path,
                          at + "cfe_percent " + quote_for_error(cells[2]) + " is not a number"});
        continue;
      }
      if (auto why = check_cfe_percent(*c)) {
        errors.push_back({ErrorKind::malformed, path, at + "cfe_percent " + *why});
        continue;
      }
      cfe = *c;
    }
    out.push_back({*t, *v, cfe});
  }
}

}  // namespace

std::vector<IntensityPoint> parse_intensity_schedule(std::string_view text, const std::string& path,
                                                     std::vector<Error>& row_errors) {
  std::vector<IntensityPoint> out;
  std::string_view t = trim(text);
  if (!t.empty() && (t.front() == '[' || t.front() == '{')) {
    parse_json(t, path, out, row_errors);
  } else {
    parse_csv(text, path, out, row_errors);
  }
  std::stable_sort(out.begin(), out.end(), [](const IntensityPoint& a, const IntensityPoint& b) {
    return a.time_ms < b.time_ms;
  });
  return out;
}

FileGridProvider::FileGridProvider(std::filesystem::path path, std::string zone)
    : path_(std::move(path)), zone_(std::move(zone)) {}

GridFetch FileGridProvider::fetch(int64_t now_ms) {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    Error e = error_from_errno(errno, path_.string(), "stat");
    return GridFetch::failure(std::string(to_string(e.kind)), e);
  }
  int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime_ns != seen_mtime_ns_ || static_cast<uintmax_t>(st.st_size) != seen_size_) {
    // 16 MB is years of half-hourly rows; more means the path points at the wrong file.
    auto text = read_text(path_, 16u << 20);
    if (!text) return GridFetch::failure(std::string(to_string(text.error().kind)), text.error());
    row_errors_.clear();
    points_ = parse_intensity_schedule(*text, path_.string(), row_errors_);
    seen_mtime_ns_ = mtime_ns;
    seen_size_ = static_cast<uintmax_t>(st.st_size);
  }
  if (points_.empty()) {
    Error e{ErrorKind::malformed, path_.string(), "no usable rows"};
    if (!row_errors_.empty()) e.detail += "; first problem: " + row_errors_.front().detail;
    return GridFetch::failure("malformed", e);
  }
  IntensityReading r;
  r.zone = zone_;
  r.signal = "average";
  r.schedule = points_;
  const IntensityPoint* current = &points_.front();
  for (const auto& p : points_) {
    if (p.time_ms <= now_ms)
      current = &p;
    else
      r.forecast.push_back(p);
  }
  r.grams_per_kwh = current->grams_per_kwh;
  r.time_ms = current->time_ms;
  GridFetch f;
  f.reading = std::move(r);
  // Row errors are counted on every re-read only, so an unchanged file does not inflate the
  // counter.
  for (const auto& e : row_errors_) f.warnings.emplace_back("malformed", e);
  row_errors_.clear();
  return f;
}

}  // namespace wattprobe
