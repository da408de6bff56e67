#include "collectors/cpu/proc_stat.h"

#include <charconv>
#include <set>
#include <string>

#include "agent/base/text_file.h"

namespace wattprobe {

uint64_t CpuTimes::busy() const { return user + nice + system + irq + softirq; }

uint64_t CpuTimes::total() const { return busy() + idle + iowait + steal; }

namespace {

constexpr int kMinColumns = 4;
constexpr int kKnownColumns = 10;

Error malformed_line(const std::filesystem::path& path, std::string_view line,
                     std::string_view why) {
  return Error{ErrorKind::malformed, path.string(),
               std::string(why) + " in line " + quote_for_error(line)};
}

// Splits on runs of spaces (the kernel pads the aggregate line's label with two).
std::vector<std::string_view> split_words(std::string_view line) {
  std::vector<std::string_view> words;
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) words.push_back(line.substr(start, i - start));
  }
  return words;
}

bool parse_decimal(std::string_view word, uint64_t& out) {
  if (word.empty() || word.front() < '0' || word.front() > '9') return false;
  auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), out);
  return ec == std::errc() && end == word.data() + word.size();
}

}  // namespace

Result<CpuStat> parse_cpu_stat(std::string_view text, const std::filesystem::path& path) {
  CpuStat stat;
  bool have_aggregate = false;
  std::set<int> seen_cpus;

  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;

    if (!line.starts_with("cpu")) continue;
    auto words = split_words(line);
    std::string_view label = words.front();

    bool aggregate = label == "cpu";
    int cpu = -1;
    if (!aggregate) {
      std::string_view digits = label.substr(3);
      uint64_t n = 0;
      if (!parse_decimal(digits, n) || n > 1u << 20) {
        return malformed_line(path, line, "unknown label " + quote_for_error(label));
      }
      cpu = static_cast<int>(n);
    }

    int columns = static_cast<int>(words.size()) - 1;
    if (columns < kMinColumns) {
      return malformed_line(
          path, line,
          std::to_string(columns) + " columns, expected at least " + std::to_string(kMinColumns));
    }
    uint64_t values[kKnownColumns] = {};
    for (int i = 0; i < columns; ++i) {
      uint64_t v = 0;
      if (!parse_decimal(words[i + 1], v)) {
        return malformed_line(path, line,
                              "column " + std::to_string(i + 1) + " " +
                                  quote_for_error(words[i + 1]) + " is not an unsigned integer");
      }
      if (i < kKnownColumns) values[i] = v;
    }
    CpuTimes t{values[0], values[1], values[2], values[3], values[4],
               values[5], values[6], values[7], values[8], values[9]};

    if (aggregate) {
      if (have_aggregate) return malformed_line(path, line, "second aggregate cpu line");
      have_aggregate = true;
      stat.aggregate = t;
    } else {
      if (!seen_cpus.insert(cpu).second) {
        return malformed_line(path, line, "cpu" + std::to_string(cpu) + " appears twice");
      }
      stat.per_cpu.push_back(PerCpuTimes{cpu, t});
    }
  }

  if (!have_aggregate) {
    return Error{ErrorKind::malformed, path.string(), "no aggregate \"cpu\" line"};
  }
  // At least one CPU is always online, so a file without cpuN lines is not the kernel's.
  if (stat.per_cpu.empty()) {
    return Error{ErrorKind::malformed, path.string(), "no per-CPU \"cpuN\" line"};
  }
  return stat;
}

Result<CpuStat> read_proc_stat(const HostPaths& paths) {
  std::filesystem::path path = paths.proc("stat");
  // /proc/stat grows with interrupt count and CPUs; 1 MiB holds thousands of CPUs.
  auto text = read_text(path, 1 << 20);
  if (!text) return text.error();
  return parse_cpu_stat(*text, path);
}

}  // namespace wattprobe
