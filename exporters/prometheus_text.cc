#include "exporters/prometheus_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string_view>

namespace wattprobe {
namespace {

// Longer than any double's shortest form ("-2.2250738585072014e-308", 24) or a uint64's (20).
constexpr std::size_t kNumberMax = 32;

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else {
    char buf[kNumberMax];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
  }
}

void append_count(std::string& out, uint64_t n) {
  char buf[kNumberMax];
  auto r = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, r.ptr);
}

// printf's %.16g, which is what prometheus-cpp's stream wrote: a bucket's `le` is part of the
// series' identity, so it keeps the text series stored before this renderer existed.
void append_bound(std::string& out, double v) {
  if (std::isinf(v) || std::isnan(v)) {
    append_value(out, v);
    return;
  }
  char buf[kNumberMax];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 16);
  out.append(buf, r.ptr);
}

void append_label_value(std::string& out, std::string_view v) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c != '\\' && c != '"' && c != '\n') continue;
    out.append(v.data() + from, i - from);
    out += '\\';
    out += c == '\n' ? 'n' : c;
    from = i + 1;
  }
  out.append(v.data() + from, v.size() - from);
}

void append_help(std::string& out, std::string_view help) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < help.size(); ++i) {
    const char c = help[i];
    if (c != '\\' && c != '\n') continue;
    out.append(help.data() + from, i - from);
    out += c == '\n' ? "\\n" : "\\\\";
    from = i + 1;
  }
  out.append(help.data() + from, help.size() - from);
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

void append_histogram(std::string& out, const std::string& name, const Histogram& h) {
  out += name;
  out += "_count ";
  append_count(out, h.count);
  out += '\n';
  out += name;
  out += "_sum ";
  append_value(out, h.sum);
  out += '\n';
  for (std::size_t i = 0; i < h.bounds.size() && i < h.cumulative.size(); ++i) {
    out += name;
    out += "_bucket{le=\"";
    append_bound(out, h.bounds[i]);
    out += "\"} ";
    append_count(out, h.cumulative[i]);
    out += '\n';
  }
  out += name;
  out += "_bucket{le=\"+Inf\"} ";
  append_count(out, h.count);
  out += '\n';
}

// An upper estimate of the text's size when no value needs escaping, so the string is
// allocated once: a value is at most 24 characters, and each label adds `,k="v"`.
std::size_t estimate_size(const Snapshot& snap) {
  std::size_t n = 0;
  for (const Family& f : snap.families) {
    n += 2 * f.name.size() + f.help.size() + 32;
    if (f.histogram) n += (f.histogram->bounds.size() + 3) * (f.name.size() + 64);
    for (const Series& s : f.series) {
      n += f.name.size() + 28;
      for (const auto& [k, v] : s.labels) n += k.size() + v.size() + 4;
    }
  }
  return n;
}

}  // namespace

void append_prometheus_text(const Snapshot& snap, std::string& out) {
  for (const Family& f : snap.families) {
    if (!f.help.empty()) {
      out += "# HELP ";
      out += f.name;
      out += ' ';
      append_help(out, f.help);
      out += '\n';
    }
    out += "# TYPE ";
    out += f.name;
    out += ' ';
    out += type_name(f.type);
    out += '\n';
    if (f.type == MetricType::histogram) {
      if (f.histogram) append_histogram(out, f.name, *f.histogram);
      continue;
    }
    for (const Series& s : f.series) {
      out += f.name;
      if (!s.labels.empty()) {
        char sep = '{';
        for (const auto& [k, v] : s.labels) {
          out += sep;
          out += k;
          out += "=\"";
          append_label_value(out, v);
          out += '"';
          sep = ',';
        }
        out += '}';
      }
      out += ' ';
      append_value(out, s.value);
      out += '\n';
    }
  }
}

std::string render_prometheus_text(const Snapshot& snap) {
  std::string out;
  out.reserve(estimate_size(snap));
  append_prometheus_text(snap, out);
  return out;
}

}  // namespace wattprobe
