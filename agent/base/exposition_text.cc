#include "agent/base/exposition_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "agent/base/text_file.h"

namespace wattprobe {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

/// Why a line is malformed; the caller adds the line number and the source.
struct LineError {
  std::size_t column = 0;  // 1-based
  std::string why;
};

/// A cursor over one line that reports errors with the column where they were found.
class LineReader {
 public:
  explicit LineReader(std::string_view line) : line_(line) {}

  bool done() const { return pos_ >= line_.size(); }
  char peek() const { return done() ? '\0' : line_[pos_]; }
  void skip_blanks() {
    while (!done() && is_blank(line_[pos_])) ++pos_;
  }
  std::string_view rest() const { return line_.substr(pos_); }
  std::size_t pos() const { return pos_; }

  LineError fail(std::string why) const {
    if (done()) return {pos_ + 1, why + " at the end of the line"};
    return {pos_ + 1, why + " at " + quote_for_error(rest())};
  }

  /// Metric names may hold colons (recording rules); label names may not.
  std::string_view name(bool metric) {
    std::size_t start = pos_;
    if (!done() && (is_name_start(line_[pos_]) || (metric && line_[pos_] == ':'))) {
      ++pos_;
      while (!done() && (is_name_char(line_[pos_]) || (metric && line_[pos_] == ':'))) ++pos_;
    }
    return line_.substr(start, pos_ - start);
  }

  /// A run of characters up to a blank or the end of the line.
  std::string_view token() {
    std::size_t start = pos_;
    while (!done() && !is_blank(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }

  bool take(char c) {
    if (peek() != c) return false;
    ++pos_;
    return true;
  }

  /// A quoted label value after its opening quote: \\, \" and \n are the only escapes.
  bool label_value(std::string& out, LineError& err) {
    const std::size_t quote = pos_ - 1;
    for (;;) {
      if (done()) {
        err = {quote + 1, "unterminated label value"};
        return false;
      }
      char c = line_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = peek();
      if (e == '\\' || e == '"') {
        out += e;
      } else if (e == 'n') {
        out += '\n';
      } else {
        --pos_;
        err = fail("invalid escape in label value (only \\\\, \\\" and \\n)");
        return false;
      }
      ++pos_;
    }
  }

 private:
  std::string_view line_;
  std::size_t pos_ = 0;
};

/// Go's strconv.ParseFloat forms the format allows: decimal and exponent forms, and NaN, Inf,
/// +Inf, -Inf in any case. Hexadecimal floats and out-of-range numbers are refused.
bool parse_value(std::string_view t, double& out) {
  if (t.empty()) return false;
  std::string lower;
  for (char c : t) lower += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (lower == "nan") {
    out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  bool negative = false;
  std::string_view body = lower;
  if (body.front() == '+' || body.front() == '-') {
    negative = body.front() == '-';
    body.remove_prefix(1);
  }
  if (body == "inf" || body == "infinity") {
    out = negative ? -std::numeric_limits<double>::infinity()
                   : std::numeric_limits<double>::infinity();
    return true;
  }
  if (body.empty() ||
      !(std::isdigit(static_cast<unsigned char>(body.front())) || body.front() == '.')) {
    return false;
  }
  if (body.find_first_not_of("0123456789.e+-") != std::string_view::npos) return false;
  double v = 0;
  auto [end, ec] =
      std::from_chars(body.data(), body.data() + body.size(), v, std::chars_format::general);
  if (ec != std::errc() || end != body.data() + body.size()) return false;
  out = negative ? -v : v;
  return true;
}

bool parse_timestamp(std::string_view t, int64_t& out) {
  if (t.empty() || t.front() == '+') return false;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
  return ec == std::errc() && end == t.data() + t.size();
}

std::optional<ExpositionType> parse_type(std::string_view t) {
  if (t == "counter") return ExpositionType::counter;
  if (t == "gauge") return ExpositionType::gauge;
  if (t == "histogram") return ExpositionType::histogram;
  if (t == "summary") return ExpositionType::summary;
  if (t == "untyped") return ExpositionType::untyped;
  return std::nullopt;
}

/// Whether a sample line named `sample` belongs to `family` (histograms and summaries spread
/// over _bucket, _sum and _count lines).
bool belongs(const ExpositionFamily& family, std::string_view sample) {
  if (sample == family.name) return family.type != ExpositionType::histogram;
  if (!sample.starts_with(family.name)) return false;
  std::string_view suffix = sample.substr(family.name.size());
  if (family.type == ExpositionType::histogram) {
    return suffix == "_bucket" || suffix == "_sum" || suffix == "_count";
  }
  if (family.type == ExpositionType::summary) return suffix == "_sum" || suffix == "_count";
  return false;
}

std::string series_key(const ExpositionSample& s) {
  Labels sorted = s.labels;
  std::sort(sorted.begin(), sorted.end());
  std::string key = s.name;
  for (const auto& [k, v] : sorted) {
    key += '\0';
    key += k;
    key += '\0';
    key += v;
  }
  return key;
}

class Parser {
 public:
  std::optional<LineError> line(std::string_view text) {
    LineReader r(text);
    r.skip_blanks();
    if (r.done()) return std::nullopt;
    if (r.take('#')) return comment(r);
    return sample(r);
  }

  std::vector<ExpositionFamily> take() { return std::move(families_); }

 private:
  std::optional<LineError> comment(LineReader& r) {
    r.skip_blanks();
    std::string_view keyword = r.token();
    if (keyword != "HELP" && keyword != "TYPE") return std::nullopt;  // an ordinary comment
    if (!is_blank(r.peek())) return r.fail("expected a metric name after " + std::string(keyword));
    r.skip_blanks();
    std::string_view name = r.name(true);
    if (name.empty()) return r.fail("expected a metric name after " + std::string(keyword));
    if (!r.done() && !is_blank(r.peek())) return r.fail("invalid character in metric name");
    if (auto err = open(name, r.pos() - name.size() + 1)) return err;
    ExpositionFamily& f = families_.back();
    if (keyword == "HELP") {
      if (has_help_) return LineError{1, "second HELP line for " + std::string(name)};
      has_help_ = true;
      r.skip_blanks();
      std::string_view raw = r.rest();
      for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\') {
          f.help += raw[i];
        } else if (i + 1 < raw.size() && raw[i + 1] == '\\') {
          f.help += '\\';
          ++i;
        } else if (i + 1 < raw.size() && raw[i + 1] == 'n') {
          f.help += '\n';
          ++i;
        } else {
          return LineError{r.pos() + i + 1, "invalid escape in HELP text (only \\\\ and \\n)"};
        }
      }
      return std::nullopt;
    }
    if (has_type_) return LineError{1, "second TYPE line for " + std::string(name)};
    if (!f.samples.empty())
      return LineError{1, "TYPE line for " + std::string(name) + " after its samples"};
    r.skip_blanks();
    std::string_view type_name = r.token();
    auto type = parse_type(type_name);
    if (!type) {
      return LineError{r.pos() - type_name.size() + 1,
                       "unknown type " + quote_for_error(type_name) +
                           " (counter, gauge, histogram, summary or untyped)"};
    }
    r.skip_blanks();
    if (!r.done()) return r.fail("unexpected text after the type");
    f.type = *type;
    has_type_ = true;
    return std::nullopt;
  }

  /// Makes `name` the current family: the same one, or a new group that must not repeat one.
  std::optional<LineError> open(std::string_view name, std::size_t column) {
    if (!families_.empty() && families_.back().name == name) return std::nullopt;
    if (!seen_.insert(std::string(name)).second) {
      return LineError{column, "metric family " + std::string(name) +
                                   " appears in two groups (its lines must be together)"};
    }
    families_.push_back({});
    families_.back().name = std::string(name);
    has_help_ = has_type_ = false;
    series_.clear();
    return std::nullopt;
  }

  std::optional<LineError> sample(LineReader& r) {
    ExpositionSample s;
    s.name = std::string(r.name(true));
    if (s.name.empty()) return r.fail("expected a metric name");
    const std::size_t after_name = r.pos();
    r.skip_blanks();
    bool braces = r.take('{');
    if (braces) {
      std::set<std::string> names;
      for (;;) {
        r.skip_blanks();
        if (r.take('}')) break;
        std::string label(r.name(false));
        if (label.empty()) return r.fail("expected a label name or '}'");
        if (label == "__name__") return r.fail("label name __name__ is reserved");
        if (!names.insert(label).second) return r.fail("label " + label + " given twice");
        r.skip_blanks();
        if (!r.take('=')) return r.fail("expected '=' after label " + label);
        r.skip_blanks();
        if (!r.take('"')) return r.fail("expected a quoted value for label " + label);
        std::string value;
        LineError err;
        if (!r.label_value(value, err)) return err;
        s.labels.emplace_back(std::move(label), std::move(value));
        r.skip_blanks();
        if (r.take(',')) continue;
        if (r.take('}')) break;
        return r.fail("expected ',' or '}' after a label");
      }
    }
    if (!braces && r.pos() == after_name) {
      return r.fail(r.done() ? "expected a value" : "invalid character in metric name");
    }
    r.skip_blanks();
    std::size_t value_at = r.pos();
    std::string_view value_text = r.token();
    if (!parse_value(value_text, s.value)) {
      return LineError{value_at + 1, "value " + quote_for_error(value_text) + " is not a number"};
    }
    r.skip_blanks();
    if (!r.done()) {
      std::size_t ts_at = r.pos();
      std::string_view ts_text = r.token();
      int64_t ts = 0;
      if (!parse_timestamp(ts_text, ts)) {
        return LineError{ts_at + 1, "timestamp " + quote_for_error(ts_text) +
                                        " is not a whole number of milliseconds"};
      }
      s.timestamp_ms = ts;
      r.skip_blanks();
      if (!r.done()) return r.fail("unexpected text after the timestamp");
    }

    if (families_.empty() || !belongs(families_.back(), s.name)) {
      if (auto err = open(s.name, 1)) return err;
    }
    ExpositionFamily& f = families_.back();
    if (f.type == ExpositionType::histogram && s.name.ends_with("_bucket")) {
      auto le = std::find_if(s.labels.begin(), s.labels.end(),
                             [](const auto& l) { return l.first == "le"; });
      double bound = 0;
      if (le == s.labels.end()) return LineError{1, "histogram bucket without an le label"};
      if (!parse_value(le->second, bound)) {
        return LineError{1, "le label " + quote_for_error(le->second) + " is not a number"};
      }
    }
    if (f.type == ExpositionType::summary && s.name == f.name &&
        std::none_of(s.labels.begin(), s.labels.end(),
                     [](const auto& l) { return l.first == "quantile"; })) {
      return LineError{1, "summary sample without a quantile label"};
    }
    if (!series_.insert(series_key(s)).second) {
      return LineError{1, "series " + s.name + " given twice with the same labels"};
    }
    f.samples.push_back(std::move(s));
    return std::nullopt;
  }

  std::vector<ExpositionFamily> families_;
  std::set<std::string> seen_;    // every family name opened so far
  std::set<std::string> series_;  // the current family's series
  bool has_help_ = false;
  bool has_type_ = false;
};

std::optional<Family> histogram_family(ExpositionFamily& f) {
  Histogram h;
  std::vector<std::pair<double, double>> buckets;
  bool has_count = false;
  for (const ExpositionSample& s : f.samples) {
    bool bucket = s.name.ends_with("_bucket");
    for (const auto& [k, v] : s.labels) {
      if (!(bucket && k == "le")) return std::nullopt;  // a labelled histogram
    }
    if (bucket) {
      double le = 0;
      parse_value(s.labels.front().second, le);  // checked by the parser
      buckets.emplace_back(le, s.value);
    } else if (s.name.ends_with("_sum")) {
      h.sum = s.value;
    } else {
      if (!(s.value >= 0) || !std::isfinite(s.value)) return std::nullopt;
      h.count = static_cast<uint64_t>(std::llround(s.value));
      has_count = true;
    }
  }
  if (!has_count) return std::nullopt;
  std::sort(buckets.begin(), buckets.end());
  for (const auto& [le, n] : buckets) {
    if (std::isinf(le)) continue;
    if (!(n >= 0) || !std::isfinite(n)) return std::nullopt;
    h.bounds.push_back(le);
    h.cumulative.push_back(static_cast<uint64_t>(std::llround(n)));
  }
  Family out(std::move(f.name), std::move(f.help), MetricType::histogram);
  out.histogram = std::move(h);
  return out;
}

}  // namespace

Result<std::vector<ExpositionFamily>> parse_exposition_text(std::string_view text,
                                                            std::string_view source) {
  Parser parser;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    std::size_t nl = text.find('\n');
    if (nl == std::string_view::npos) {
      return Error{
          ErrorKind::malformed, std::string(source),
          "line " + std::to_string(number) + ": the last line does not end with a newline"};
    }
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    if (auto err = parser.line(line)) {
      return Error{ErrorKind::malformed, std::string(source),
                   "line " + std::to_string(number) + ", column " + std::to_string(err->column) +
                       ": " + err->why + " (line " + quote_for_error(line) + ")"};
    }
  }
  return parser.take();
}

std::vector<Family> to_snapshot_families(std::vector<ExpositionFamily> families) {
  std::vector<Family> out;
  out.reserve(families.size());
  for (ExpositionFamily& f : families) {
    switch (f.type) {
      case ExpositionType::counter:
      case ExpositionType::gauge:
      case ExpositionType::untyped: {
        Family g(std::move(f.name), std::move(f.help),
                 f.type == ExpositionType::counter ? MetricType::counter : MetricType::gauge);
        g.series.reserve(f.samples.size());
        for (ExpositionSample& s : f.samples) g.series.push_back({std::move(s.labels), s.value});
        out.push_back(std::move(g));
        break;
      }
      case ExpositionType::histogram:
        if (auto h = histogram_family(f)) out.push_back(std::move(*h));
        break;
      case ExpositionType::summary:
        break;
    }
  }
  return out;
}

}  // namespace wattprobe
