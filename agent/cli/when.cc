#include "agent/cli/when.h"

#include <signal.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "agent/base/duration.h"
#include "agent/base/http_client.h"
#include "agent/carbon/best_window.h"
#include "agent/carbon/grid/registry.h"

namespace wattprobe {
namespace {

namespace po = boost::program_options;
using nlohmann::json;

constexpr int64_t kMsPerMinute = 60000;

[[noreturn]] void bad(const std::string& option, const std::string& value, const std::string& why) {
  throw UsageError("invalid value \"" + value + "\" for --" + option + " (command line): " + why);
}

po::options_description describe_when() {
  po::options_description d("when options");
  d.add_options()("duration", po::value<std::string>(),
                  "how long the job runs, whole minutes (90m, 2h); required")(
      "within", po::value<std::string>(),
      "the job must end within this long from now (12h); required")(
      "url", po::value<std::string>(),
      "a running agent's base or /metrics URL to ask (default: ask the grid provider directly, "
      "with `run`'s grid options)")("format", po::value<std::string>(), "text (default) or json")(
      "exec", po::bool_switch(), "then sleep until the start and run the command after `--`");
  return d;
}

int64_t minutes_option(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) throw UsageError(std::string("--") + name + " is required");
  const std::string v = vm[name].as<std::string>();
  auto d = parse_duration(v);
  if (!d) bad(name, v, "expected a duration such as 90m or 2h");
  if (d->count() < kMsPerMinute || d->count() % kMsPerMinute != 0) {
    bad(name, v, "expected whole minutes, at least 1m");
  }
  if (*d > std::chrono::hours(24 * 7)) bad(name, v, "expected at most 7d");
  return d->count();
}

/// What the forecast offers from now: every window that ends in time, or why none.
struct Decision {
  std::vector<Window> windows;
  std::optional<Window> best;
  std::string unusable;
  std::string zone;
};

std::string api_base(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.ends_with("/metrics")) url.resize(url.size() - 8);
  return url;
}

Decision ask_agent(const WhenOptions& o, int64_t now) {
  Decision d;
  const std::string base = api_base(o.url);
  const std::string url =
      base +
      "/emissions/forecasts/current?windowSize=" + std::to_string(o.duration_ms / kMsPerMinute) +
      "&dataStartAt=" + format_rfc3339(now) + "&dataEndAt=" + format_rfc3339(now + o.within_ms);
  HttpClient client(HttpOptions{5, 20, 4u << 20, ""});
  HttpGetResult r = client.get({url, {}, {}, {}});
  const std::string where = redact_url(base);
  if (!r.ok()) {
    d.unusable = "cannot ask " + where + ": " + r.detail;
    return d;
  }
  json j = json::parse(r.body, nullptr, false);
  if (r.status != 200) {
    std::string why = "HTTP " + std::to_string(r.status);
    if (j.is_object()) {
      if (auto detail = j.find("detail"); detail != j.end() && detail->is_string()) {
        why += ": " + detail->get<std::string>();
      } else if (auto errors = j.find("errors"); errors != j.end()) {
        why += ": " + errors->dump();
      }
    }
    d.unusable = where + " answered " + why;
    return d;
  }
  auto malformed = [&](const std::string& what) {
    d.unusable = where + ": the answer is not the Carbon Aware SDK's forecast (" + what + ")";
    return d;
  };
  if (!j.is_array() || j.empty() || !j[0].is_object()) return malformed("not an array of one");
  const json& f = j[0];
  auto read = [&](const json& p, Window& w) {
    if (!p.is_object()) return false;
    auto ts = p.find("timestamp");
    auto v = p.find("value");
    auto dur = p.find("duration");
    if (ts == p.end() || !ts->is_string() || v == p.end() || !v->is_number() || dur == p.end() ||
        !dur->is_number_integer())
      return false;
    // Only whole-second UTC times come back (format_rfc3339); anything else is refused.
    const std::string t = ts->get<std::string>();
    std::tm tm{};
    const char* end = strptime(t.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end != '\0') return false;
    w.start_ms = static_cast<int64_t>(timegm(&tm)) * 1000;
    w.grams_per_kwh = v->get<double>();
    w.duration_ms = dur->get<int64_t>() * kMsPerMinute;
    return std::isfinite(w.grams_per_kwh);
  };
  auto data = f.find("forecastData");
  auto optimal = f.find("optimalDataPoints");
  if (data == f.end() || !data->is_array() || optimal == f.end() || !optimal->is_array() ||
      optimal->empty())
    return malformed("forecastData or optimalDataPoints missing");
  for (const auto& p : *data) {
    Window w;
    if (!read(p, w)) return malformed("a forecastData point");
    d.windows.push_back(w);
  }
  Window best;
  if (!read((*optimal)[0], best)) return malformed("optimalDataPoints[0]");
  d.best = best;
  if (auto z = f.find("location"); z != f.end() && z->is_string()) d.zone = z->get<std::string>();
  return d;
}

Decision ask_provider(const WhenOptions& o, int64_t now, std::ostream& err) {
  Decision d;
  err << "wattprobe when: no --url: asking grid provider " << o.agent.carbon.grid_provider
      << " directly, with the grid options of `run`\n";
  auto valid = validate_grid(o.agent.carbon);
  if (!valid.ok()) {
    d.unusable = valid.error().detail;
    return d;
  }
  std::unique_ptr<Carbon> carbon = make_carbon(o.agent.paths, o.agent.carbon);
  if (carbon->grid().live()) carbon->grid().refresh_now(wall_ms());
  ForecastAnswer a = carbon->forecast_at(now);
  d.zone = a.zone;
  if (!a.forecast) {
    d.unusable = a.unusable;
    return d;
  }
  d.windows = forecast_windows(clip_forecast(*a.forecast, now, now + o.within_ms), o.duration_ms);
  d.best = best_window(d.windows);
  if (!d.best) {
    d.unusable = "no " + format_duration(std::chrono::milliseconds(o.duration_ms)) +
                 " window of the forecast (to " + format_rfc3339(a.forecast->end_ms) +
                 ") ends within " + format_duration(std::chrono::milliseconds(o.within_ms));
  }
  return d;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

/// Waits until `until_ms` on the wall clock, or a stop signal: 0, or 128 + the signal.
int sleep_until(int64_t until_ms) {
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  int result = 0;
  for (;;) {
    const int64_t left = until_ms - wall_ms();
    if (left <= 0) break;
    // Slices of at most a minute follow the wall clock if it is stepped while waiting.
    const int64_t slice = std::min<int64_t>(left, kMsPerMinute);
    timespec ts{static_cast<time_t>(slice / 1000), static_cast<long>(slice % 1000) * 1000000};
    const int sig = sigtimedwait(&stop, nullptr, &ts);
    if (sig > 0) {
      result = 128 + sig;
      break;
    }
  }
  pthread_sigmask(SIG_UNBLOCK, &stop, nullptr);
  return result;
}

int exec_command(const std::vector<std::string>& command, std::ostream& err) {
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(nullptr);
  ::execvp(argv[0], argv.data());
  err << "wattprobe when: cannot run " << command[0] << ": " << std::strerror(errno) << "\n";
  return 127;
}

}  // namespace

std::string when_help() {
  std::ostringstream os;
  os << "usage: wattprobe when --duration D --within D [--url URL] [--format text|json]\n"
     << "                      [run's grid options] [--exec -- COMMAND ARGS...]\n"
     << "The start, within the next --within, of the --duration window with the lowest forecast\n"
     << "grid intensity; with --exec, sleeps until then and runs the command.\n"
     << "Exit: 0 printed; with --exec the command's own code; 1 no usable forecast (with --exec\n"
     << "the command then runs at once); 2 usage; 143 SIGTERM while waiting.\n\n"
     << describe_when();
  return os.str();
}

WhenOptions parse_when_options(const std::vector<std::string>& all) {
  std::vector<std::string> args = all;
  std::vector<std::string> command;
  bool has_separator = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--") {
      command.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      args.resize(i);
      has_separator = true;
      break;
    }
  }
  po::options_description desc = describe_when();
  std::vector<std::string> rest;
  po::variables_map vm = parse_own_options(args, desc, &rest);
  WhenOptions o;
  o.duration_ms = minutes_option(vm, "duration");
  o.within_ms = minutes_option(vm, "within");
  if (o.within_ms < o.duration_ms) {
    bad("within", vm["within"].as<std::string>(), "shorter than --duration");
  }
  if (vm.count("format")) {
    const std::string f = vm["format"].as<std::string>();
    if (f != "text" && f != "json") bad("format", f, "expected text or json");
    o.json = f == "json";
  }
  if (vm["exec"].as<bool>()) {
    if (command.empty()) throw UsageError("--exec needs the command after `--`");
    o.exec = std::move(command);
  } else if (has_separator) {
    throw UsageError("a command after `--` needs --exec");
  }
  if (vm.count("url")) {
    o.url = vm["url"].as<std::string>();
    if (!o.url.starts_with("http://") && !o.url.starts_with("https://")) {
      bad("url", o.url, "expected an http:// or https:// URL");
    }
    if (!rest.empty()) {
      throw UsageError("option " + rest.front() +
                       " has no use with --url: the agent asked has its own");
    }
  }
  if (!rest.empty() && !rest.front().starts_with("-")) {
    throw UsageError("unexpected argument \"" + rest.front() + "\"");
  }
  o.agent = parse_run_options(rest);
  return o;
}

int run_when(const WhenOptions& o, std::ostream& out, std::ostream& err) {
  const int64_t now = wall_ms() / 1000 * 1000;
  Decision d = o.url.empty() ? ask_provider(o, now, err) : ask_agent(o, now);
  if (!d.best) {
    err << "wattprobe when: no usable forecast: " << d.unusable << "\n";
    if (o.exec.empty()) return 1;
    err << "wattprobe when: running the command now, since a batch job must run\n";
    return exec_command(o.exec, err);
  }
  const Window& best = *d.best;
  std::optional<double> now_value;
  for (const auto& w : d.windows) {
    if (w.start_ms == now) now_value = w.grams_per_kwh;
  }
  if (o.json) {
    json j{{"now", format_rfc3339(now)},
           {"location", d.zone},
           {"start", format_rfc3339(best.start_ms)},
           {"durationMinutes", o.duration_ms / kMsPerMinute},
           {"gramsPerKwh", best.grams_per_kwh},
           {"source", o.url.empty() ? "provider" : "agent"}};
    if (now_value) {
      j["nowGramsPerKwh"] = *now_value;
      j["savingGramsPerKwh"] = *now_value - best.grams_per_kwh;
      if (*now_value > 0) j["savingPercent"] = (*now_value - best.grams_per_kwh) / *now_value * 100;
    }
    out << j.dump() << "\n";
  } else {
    out << "best start: " << format_rfc3339(best.start_ms);
    if (best.start_ms == now) {
      out << " (now)\n";
    } else {
      out << " (in "
          << format_duration(std::chrono::milliseconds((best.start_ms - now) / 1000 * 1000))
          << ")\n";
    }
    out << "mean intensity: " << fmt(best.grams_per_kwh) << " g/kWh over "
        << format_duration(std::chrono::milliseconds(o.duration_ms)) << "\n";
    if (now_value) {
      out << "saving vs now: " << fmt(*now_value - best.grams_per_kwh) << " g/kWh";
      if (*now_value > 0)
        out << " (" << fmt((*now_value - best.grams_per_kwh) / *now_value * 100) << "%)";
      out << "\n";
    } else {
      out << "saving vs now: unknown (the forecast starts after now)\n";
    }
  }
  out.flush();
  if (o.exec.empty()) return 0;
  if (best.start_ms > now) {
    err << "wattprobe when: waiting until " << format_rfc3339(best.start_ms) << " to run "
        << o.exec.front() << "\n";
    if (int sig = sleep_until(best.start_ms); sig != 0) {
      err << "wattprobe when: stopped while waiting (signal " << sig - 128 << "); not run\n";
      return sig;
    }
  }
  return exec_command(o.exec, err);
}

int when_command(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::cout << when_help();
      return 0;
    }
  }
  WhenOptions o;
  try {
    o = parse_when_options(args);
  } catch (const UsageError& e) {
    std::cerr << "wattprobe when: " << e.what() << "\n";
    return 2;
  }
  try {
    return run_when(o, std::cout, std::cerr);
  } catch (const std::exception& e) {
    std::cerr << "wattprobe when: " << e.what() << "\n";
    if (o.exec.empty()) return 1;
    std::cerr << "wattprobe when: running the command now, since a batch job must run\n";
    return exec_command(o.exec, std::cerr);
  }
}

}  // namespace wattprobe
