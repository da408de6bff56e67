#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/base/result.h"
#include "agent/base/usage_error.h"

namespace wattprobe {

/// One value of an option as it was given: the option's name, the text, and where it came from
/// ("command line" or "config file F line N").
struct OptionValue {
  std::string option;
  std::string value;
  std::string origin;
};

/// The one refusal every option uses, which tests and users read:
/// `invalid value "V" for --NAME (ORIGIN): WHY`. Throws UsageError.
[[noreturn]] void refuse_value(const OptionValue& v, const std::string& why);

// The kinds of value, each read strictly; a value out of its kind or range is refused.
uint64_t whole_value(const OptionValue& v, uint64_t lo, uint64_t hi);
double number_value(const OptionValue& v, double lo, double hi);
std::chrono::milliseconds duration_value(const OptionValue& v, std::chrono::milliseconds lo,
                                         std::chrono::milliseconds hi);
/// A folder that exists.
std::filesystem::path folder_value(const OptionValue& v);
/// A secret file's path, with `$CREDENTIALS_DIRECTORY/` (systemd's LoadCredential=) expanded.
std::string secret_path_value(const OptionValue& v);
/// A secret file option's value with a leading `$CREDENTIALS_DIRECTORY/` (or
/// `${CREDENTIALS_DIRECTORY}/`) replaced by that variable, which systemd sets for a unit with
/// LoadCredential= to the folder holding its credentials; so one config line works whatever the
/// unit is called. Any other value is returned as it is. Malformed when the variable is unset.
Result<std::string> expand_credentials_directory(const std::string& value);
/// True when the value names a regular file.
bool is_regular_file_value(const OptionValue& v);
/// NAME=VALUE with a non-empty NAME; `form` names the shape in the refusal ("NAME=VALUE").
std::pair<std::string, std::string> name_value(const OptionValue& v,
                                               std::string_view form = "NAME=VALUE");
/// A number as --help and the config file write it: 0.74, 475, 1e+06.
std::string number_text(double d);
/// "a, b or c".
std::string word_list(const std::vector<std::string_view>& words);

/// A word an option takes and the value it stands for: enums are read from these tables.
template <class E>
struct Choice {
  std::string_view word;
  E value;
};

template <class E>
std::string_view word_of(const std::vector<Choice<E>>& choices, const E& value) {
  for (const Choice<E>& c : choices) {
    if (c.value == value) return c.word;
  }
  return {};
}

/// The value `word` stands for, or nullopt.
template <class E>
std::optional<E> value_of(const std::vector<Choice<E>>& choices, std::string_view word) {
  for (const Choice<E>& c : choices) {
    if (c.word == word) return c.value;
  }
  return std::nullopt;
}

/// "a, b or c": the words, for help and refusals.
template <class E>
std::string words_of(const std::vector<Choice<E>>& choices) {
  std::vector<std::string_view> words;
  for (const Choice<E>& c : choices) words.push_back(c.word);
  return word_list(words);
}

/// One option of the struct T it fills, declared once beside T in the wing that uses it. Its
/// name is the long option without dashes and the config file's key; parsing, --help, the config
/// file and the check of packaging/wattprobe.conf all read it. The default is never written
/// here: `shown` reads it from a default-made T.
template <class T>
struct OptionSpec {
  using Setter = std::function<void(T&, const std::vector<OptionValue>&)>;
  using Shower = std::function<std::string(const T&)>;
  OptionSpec(std::string name_, std::string help_, Setter set_, Shower shown_,
             bool repeatable_ = false)
      : name(std::move(name_)),
        help(std::move(help_)),
        set(std::move(set_)),
        shown(std::move(shown_)),
        repeatable(repeatable_) {}

  std::string name;
  /// What it does and its range; --help adds " (default D<default_note>)".
  std::string help;
  /// Checks and stores the values given (one, the last, for a single-valued option; every one,
  /// in order, for a repeatable one). Throws UsageError naming the value.
  Setter set;
  /// The value of the field as an option would give it ("1s", "auto"); "" when unset.
  Shower shown;
  bool repeatable = false;
  /// The value an option given alone on the command line stands for ("true"); "" if none.
  std::string bare;
  /// Said after the default in --help: ": off", "; 0 keeps all", or, with no default to show,
  /// what stands in for it (": the system store").
  std::string default_note;

  /// The help line: help, then the default.
  std::string describe(const T& defaults) const {
    const std::string d = shown ? shown(defaults) : "";
    if (d.empty() && default_note.empty()) return help;
    return help + " (default" + (d.empty() ? "" : " " + d) + default_note + ")";
  }
  OptionSpec note(std::string text) && {
    default_note = std::move(text);
    return std::move(*this);
  }
};

template <class T>
using OptionTable = std::vector<OptionSpec<T>>;

/// `inner`'s options as options of the struct that holds it in `member`.
template <class Outer, class Inner>
OptionTable<Outer> nest(const OptionTable<Inner>& inner, Inner Outer::*member) {
  OptionTable<Outer> out;
  for (const OptionSpec<Inner>& s : inner) {
    OptionSpec<Outer> o(
        s.name, s.help,
        [set = s.set, member](Outer& t, const std::vector<OptionValue>& v) { set(t.*member, v); },
        [shown = s.shown, member](const Outer& t) { return shown(t.*member); }, s.repeatable);
    o.bare = s.bare;
    o.default_note = s.default_note;
    out.push_back(std::move(o));
  }
  return out;
}

template <class T>
void append(OptionTable<T>& to, const OptionTable<T>& more) {
  to.insert(to.end(), more.begin(), more.end());
}

namespace option_detail {

inline void store(std::chrono::milliseconds& f, std::chrono::milliseconds d) { f = d; }
inline void store(std::chrono::seconds& f, std::chrono::milliseconds d) {
  f = std::chrono::duration_cast<std::chrono::seconds>(d);
}
inline void store(double& seconds, std::chrono::milliseconds d) {
  seconds = static_cast<double>(d.count()) / 1000.0;
}
inline void store(std::optional<double>& seconds, std::chrono::milliseconds d) {
  seconds = static_cast<double>(d.count()) / 1000.0;
}
std::string duration_text(std::chrono::milliseconds d);
inline std::string duration_text(std::chrono::seconds d) {
  return duration_text(std::chrono::milliseconds(d));
}
inline std::string duration_text(double seconds) {
  return duration_text(std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
}
inline std::string duration_text(const std::optional<double>& seconds) {
  return seconds ? duration_text(*seconds) : "";
}
inline std::string number_or_unset(double d) { return number_text(d); }
inline std::string number_or_unset(const std::optional<double>& d) {
  return d ? number_text(*d) : "";
}
template <class T>
std::function<void(T&, const std::vector<OptionValue>&)> last(
    std::function<void(T&, const OptionValue&)> one) {
  return [one](T& t, const std::vector<OptionValue>& v) { one(t, v.back()); };
}

}  // namespace option_detail

/// Any text; `if_empty`, when given, refuses an empty value with that reason.
template <class T, class F>
OptionSpec<T> text_option(std::string name, F T::*field, std::string help,
                          std::string if_empty = "") {
  return {std::move(name), std::move(help),
          option_detail::last<T>([field, if_empty](T& t, const OptionValue& v) {
            if (v.value.empty() && !if_empty.empty()) refuse_value(v, if_empty);
            t.*field = v.value;
          }),
          [field](const T& t) { return std::string(t.*field); }};
}

/// A whole number from lo to hi; the range is added to the help.
template <class T, class N>
OptionSpec<T> whole_option(std::string name, N T::*field, uint64_t lo, uint64_t hi,
                           std::string help) {
  return {std::move(name),
          std::move(help) + ", " + std::to_string(lo) + " to " + std::to_string(hi),
          option_detail::last<T>([field, lo, hi](T& t, const OptionValue& v) {
            t.*field = static_cast<N>(whole_value(v, lo, hi));
          }),
          [field](const T& t) { return std::to_string(t.*field); }};
}

/// A byte cap: 0 for none, else 1 MiB to 1 TiB.
template <class T, class N>
OptionSpec<T> byte_cap_option(std::string name, N T::*field, std::string help) {
  return {std::move(name), std::move(help) + ", 1 MiB to 1 TiB",
          option_detail::last<T>([field](T& t, const OptionValue& v) {
            const uint64_t n = whole_value(v, 0, uint64_t{1} << 40);
            if (n != 0 && n < (1u << 20))
              refuse_value(v, "expected 0 (no cap) or 1048576 (1 MiB) and more");
            t.*field = static_cast<N>(n);
          }),
          [field](const T& t) { return std::to_string(t.*field); }};
}

/// A number (double, or an optional one unset by default) from lo to hi; the range is added to
/// the help.
template <class T, class F>
OptionSpec<T> number_option(std::string name, F T::*field, double lo, double hi, std::string help) {
  return {std::move(name), std::move(help) + ", " + number_text(lo) + " to " + number_text(hi),
          option_detail::last<T>(
              [field, lo, hi](T& t, const OptionValue& v) { t.*field = number_value(v, lo, hi); }),
          [field](const T& t) { return option_detail::number_or_unset(t.*field); }};
}

/// A duration such as 500ms, 1s, 5m, from lo to hi, stored as milliseconds, seconds or a
/// double of seconds. The range is added to the help.
template <class T, class F>
OptionSpec<T> duration_option(std::string name, F T::*field, std::chrono::milliseconds lo,
                              std::chrono::milliseconds hi, std::string help) {
  return {std::move(name),
          std::move(help) + ", " + option_detail::duration_text(lo) + " to " +
              option_detail::duration_text(hi),
          option_detail::last<T>([field, lo, hi](T& t, const OptionValue& v) {
            option_detail::store(t.*field, duration_value(v, lo, hi));
          }),
          [field](const T& t) { return option_detail::duration_text(t.*field); }};
}

/// One of the words of `choices`; the help lists them.
template <class T, class E>
OptionSpec<T> choice_option(std::string name, E T::*field, std::vector<Choice<E>> choices,
                            std::string help) {
  const std::string list = words_of(choices);
  return {std::move(name), help.empty() ? list : help + ": " + list,
          option_detail::last<T>([field, choices, list](T& t, const OptionValue& v) {
            auto value = value_of(choices, v.value);
            if (!value) refuse_value(v, "expected " + list);
            t.*field = *value;
          }),
          [field, choices](const T& t) { return std::string(word_of(choices, t.*field)); }};
}

/// true or false; the option alone on the command line means true.
template <class T>
OptionSpec<T> flag_option(std::string name, bool T::*field, std::string help) {
  OptionSpec<T> o =
      choice_option<T, bool>(std::move(name), field, {{"true", true}, {"false", false}}, "");
  o.help = std::move(help);
  o.bare = "true";
  return o;
}

/// A folder that exists.
template <class T>
OptionSpec<T> folder_option(std::string name, std::filesystem::path T::*field, std::string help) {
  return {
      std::move(name), std::move(help),
      option_detail::last<T>([field](T& t, const OptionValue& v) { t.*field = folder_value(v); }),
      [field](const T& t) { return (t.*field).string(); }};
}

/// A file holding a secret (also `$CREDENTIALS_DIRECTORY/NAME`); its content is checked by the
/// caller, which knows when the secret is read.
template <class T>
OptionSpec<T> secret_file_option(std::string name, std::string T::*field, std::string help) {
  return {std::move(name), std::move(help),
          option_detail::last<T>(
              [field](T& t, const OptionValue& v) { t.*field = secret_path_value(v); }),
          [field](const T& t) { return t.*field; }};
}

/// NAME=VALUE, repeatable, in the order given.
template <class T>
OptionSpec<T> name_values_option(std::string name,
                                 std::vector<std::pair<std::string, std::string>> T::*field,
                                 std::string help) {
  OptionSpec<T> o{std::move(name), std::move(help),
                  [field](T& t, const std::vector<OptionValue>& values) {
                    for (const OptionValue& v : values) (t.*field).push_back(name_value(v));
                  },
                  [](const T&) { return std::string(); }};
  o.repeatable = true;
  return o;
}

/// An existing regular file, such as a CA bundle.
template <class T>
OptionSpec<T> file_option(std::string name, std::string T::*field, std::string help) {
  return {std::move(name), std::move(help),
          option_detail::last<T>([field](T& t, const OptionValue& v) {
            if (!is_regular_file_value(v)) refuse_value(v, "no such file");
            t.*field = v.value;
          }),
          [field](const T& t) { return t.*field; }};
}

}  // namespace wattprobe
