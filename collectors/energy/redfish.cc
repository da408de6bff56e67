#include "collectors/energy/redfish.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "agent/base/http_client.h"
#include "agent/base/log.h"
#include "agent/base/secret_file.h"
#include "agent/base/utc_time.h"

namespace wattprobe {

using nlohmann::json;

std::string_view to_string(RedfishKind kind) {
  switch (kind) {
    case RedfishKind::energy_counter:
      return "energy_counter";
    case RedfishKind::supply_input:
      return "supply_input";
    case RedfishKind::chassis_power:
      return "chassis_power";
    case RedfishKind::power_control:
      return "power_control";
  }
  return "unknown";
}

namespace {

// The @odata.id of member `key` of `doc` (`{"key": {"@odata.id": "/..."}}`), or empty.
std::string link(const json& doc, std::string_view key) {
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_object()) return {};
  auto id = it->find("@odata.id");
  if (id == it->end() || !id->is_string()) return {};
  std::string s = id->get<std::string>();
  // Only paths on the same service: an absolute URL would send the credentials elsewhere.
  if (s.empty() || s[0] != '/') return {};
  return s;
}

std::vector<std::string> members(const json& collection) {
  std::vector<std::string> out;
  auto m = collection.find("Members");
  if (m == collection.end() || !m->is_array()) return out;
  for (const json& e : *m) {
    if (!e.is_object()) continue;
    auto id = e.find("@odata.id");
    if (id != e.end() && id->is_string()) {
      std::string s = id->get<std::string>();
      if (!s.empty() && s[0] == '/') out.push_back(std::move(s));
    }
  }
  return out;
}

std::string last_part(const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  auto slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

std::string text(const json& doc, std::string_view key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool has_number(const json& doc, std::string_view key) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_number();
}

// doc[field].Reading is a number.
bool has_reading(const json& doc, std::string_view field) {
  auto it = doc.find(field);
  return it != doc.end() && it->is_object() && has_number(*it, "Reading");
}

double energy_unit(std::string_view reading_type) {
  if (reading_type == "EnergyJoules") return 1;
  if (reading_type == "EnergyWh") return 3600;
  if (reading_type == "EnergykWh") return 3.6e6;
  return 0;
}

// A sensor about a part (a supply, a CPU) is not the chassis' figure: adding it would count a
// part as the whole.
bool chassis_wide(const json& sensor) {
  std::string ctx = text(sensor, "PhysicalContext");
  return ctx.empty() || ctx == "Chassis" || ctx == "SystemBoard" || ctx == "PowerSubsystem";
}

Error malformed(const std::string& path, const std::string& detail) {
  return Error{ErrorKind::malformed, path, detail};
}

Result<double> number_at(const json& v, const std::string& path, const std::string& field) {
  if (!v.is_number())
    return malformed(path, field + ": expected a number, found " + v.dump().substr(0, 40));
  double d = v.get<double>();
  if (!std::isfinite(d) || d < 0)
    return malformed(path, field + ": expected a finite number >= 0, found " + v.dump());
  return d;
}

}  // namespace

OptionTable<RedfishOptions> redfish_option_table() {
  using R = RedfishOptions;
  using std::chrono::seconds;
  return {
      {"redfish-url", "redfish: the BMC's URL, https://HOST[:PORT] (http:// is warned of)",
       [](R& r, const std::vector<OptionValue>& v) {
         if (v.back().value.empty()) refuse_value(v.back(), "expected https://HOST[:PORT]");
         if (url_has_credentials(v.back().value))
           // Not refuse_value(): it repeats the value, and this one holds a password.
           throw UsageError("invalid --redfish-url (" + v.back().origin +
                            "): credentials in the URL; give them with --redfish-user-file and "
                            "--redfish-password-file");
         r.url = v.back().value;
       },
       [](const R& r) { return r.url; }},
      secret_file_option("redfish-user-file", &R::user_file,
                         "redfish: file holding the BMC user (also $CREDENTIALS_DIRECTORY/NAME)"),
      secret_file_option(
          "redfish-password-file", &R::password_file,
          "redfish: file holding the BMC password (also $CREDENTIALS_DIRECTORY/NAME)"),
      text_option("redfish-ca-file", &R::ca_file,
                  "redfish: CA bundle (PEM) that signed the BMC's certificate",
                  "expected a PEM file")
          .note(": the system store"),
      flag_option("redfish-insecure-skip-verify", &R::insecure_skip_verify,
                  "redfish: do not check the BMC's certificate (warned at every start)"),
      text_option("redfish-chassis", &R::chassis, "redfish: the chassis Id to read",
                  "expected a chassis Id")
          .note(": the one chassis with power data"),
      duration_option("redfish-interval", &R::interval, seconds(1), std::chrono::minutes(10),
                      "redfish: how often the BMC is read"),
      duration_option("redfish-timeout", &R::timeout, seconds(1), seconds(60),
                      "redfish: how long one answer may take"),
  };
}

std::optional<int64_t> parse_redfish_time(std::string_view t) {
  if (t.size() < 20 || t[10] != 'T') return std::nullopt;
  auto day = parse_utc_date(t.substr(0, 10));
  if (!day) return std::nullopt;
  auto two = [&](std::size_t at, int& out) {
    if (at + 2 > t.size() || !std::isdigit(static_cast<unsigned char>(t[at])) ||
        !std::isdigit(static_cast<unsigned char>(t[at + 1])))
      return false;
    out = (t[at] - '0') * 10 + (t[at + 1] - '0');
    return true;
  };
  int h = 0, m = 0, s = 0;
  if (!two(11, h) || t[13] != ':' || !two(14, m) || t[16] != ':' || !two(17, s) || h > 23 ||
      m > 59 || s > 60)
    return std::nullopt;
  std::size_t i = 19;
  int64_t ms = 0;
  if (i < t.size() && t[i] == '.') {
    ++i;
    int digits = 0;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
      if (digits < 3) ms = ms * 10 + (t[i] - '0');
      ++digits;
      ++i;
    }
    if (digits == 0) return std::nullopt;
    for (int d = digits; d < 3; ++d) ms *= 10;
  }
  int64_t offset_min = 0;
  if (i < t.size() && t[i] == 'Z') {
    ++i;
  } else if (i < t.size() && (t[i] == '+' || t[i] == '-')) {
    int oh = 0, om = 0;
    if (!two(i + 1, oh) || i + 3 >= t.size() || t[i + 3] != ':' || !two(i + 4, om) || oh > 23 ||
        om > 59)
      return std::nullopt;
    offset_min = (t[i] == '+' ? 1 : -1) * (oh * 60 + om);
    i += 6;
  } else {
    return std::nullopt;
  }
  if (i != t.size()) return std::nullopt;
  return *day + ((h * 60 + m) * 60 + s) * int64_t{1000} + ms - offset_min * 60000;
}

Result<std::vector<RedfishChassis>> discover_redfish(const RedfishGet& get) {
  auto root = get("/redfish/v1");
  if (!root) return root.error();
  std::string chassis_path = link(*root, "Chassis");
  if (chassis_path.empty())
    return Error{ErrorKind::unsupported, "/redfish/v1", "the service root has no Chassis link"};
  auto collection = get(chassis_path);
  if (!collection) return collection.error();
  std::vector<RedfishChassis> out;
  for (const std::string& path : members(*collection)) {
    auto chassis = get(path);
    if (!chassis) return chassis.error();
    RedfishChassis c;
    c.id = last_part(path);
    std::optional<RedfishPlan> energy, input, chassis_power, control;
    auto plan = [&](RedfishKind kind, RedfishShape shape, std::string field,
                    std::vector<std::string> urls, double unit, std::string what) {
      return RedfishPlan{c.id, kind,           shape, std::move(field), std::move(urls),
                         unit, std::move(what)};
    };

    if (std::string em_path = link(*chassis, "EnvironmentMetrics"); !em_path.empty()) {
      if (auto em = get(em_path)) {
        if (has_reading(*em, "EnergyJoules")) {
          energy = plan(RedfishKind::energy_counter, RedfishShape::metrics_field, "EnergyJoules",
                        {em_path}, 1, "EnvironmentMetrics.EnergyJoules");
        } else if (has_reading(*em, "EnergykWh")) {
          energy = plan(RedfishKind::energy_counter, RedfishShape::metrics_field, "EnergykWh",
                        {em_path}, 3.6e6, "EnvironmentMetrics.EnergykWh");
        }
        if (has_reading(*em, "PowerWatts"))
          chassis_power = plan(RedfishKind::chassis_power, RedfishShape::metrics_field,
                               "PowerWatts", {em_path}, 1, "EnvironmentMetrics.PowerWatts");
      }
    }
    if (std::string sensors_path = link(*chassis, "Sensors"); !sensors_path.empty()) {
      if (auto sensors = get(sensors_path)) {
        for (const std::string& sp : members(*sensors)) {
          auto s = get(sp);
          if (!s || !chassis_wide(*s) || !has_number(*s, "Reading")) continue;
          std::string type = text(*s, "ReadingType");
          if (double unit = energy_unit(type); unit > 0 && !energy) {
            energy = plan(RedfishKind::energy_counter, RedfishShape::sensor, "", {sp}, unit,
                          "Sensors/" + last_part(sp) + " (" + type + ")");
          } else if (type == "Power" && text(*s, "ElectricalContext") == "Total" &&
                     !chassis_power) {
            chassis_power = plan(RedfishKind::chassis_power, RedfishShape::sensor, "", {sp}, 1,
                                 "Sensors/" + last_part(sp) + " (Power, Total)");
          }
        }
      }
    }
    if (std::string ps_path = link(*chassis, "PowerSubsystem"); !ps_path.empty()) {
      auto ps = get(ps_path);
      std::string supplies_path = ps ? link(*ps, "PowerSupplies") : std::string();
      auto supplies = supplies_path.empty() ? Result<json>(malformed(ps_path, "no PowerSupplies"))
                                            : get(supplies_path);
      if (supplies) {
        std::vector<std::string> metrics;
        for (const std::string& sp : members(*supplies)) {
          auto supply = get(sp);
          std::string mp = supply ? link(*supply, "Metrics") : std::string();
          if (mp.empty()) continue;
          if (auto m = get(mp); m && has_reading(*m, "InputPowerWatts")) metrics.push_back(mp);
        }
        if (!metrics.empty()) {
          std::string what = "PowerSubsystem/PowerSupplies/*/Metrics.InputPowerWatts (" +
                             std::to_string(metrics.size()) + " supplies)";
          input = plan(RedfishKind::supply_input, RedfishShape::metrics_field, "InputPowerWatts",
                       std::move(metrics), 1, std::move(what));
        }
      }
    }
    if (std::string power_path = link(*chassis, "Power"); !power_path.empty()) {
      if (auto power = get(power_path)) {
        auto supplies = power->find("PowerSupplies");
        if (!input && supplies != power->end() && supplies->is_array()) {
          int n = 0;
          for (const json& s : *supplies)
            if (s.is_object() && has_number(s, "PowerInputWatts")) ++n;
          if (n > 0)
            input =
                plan(RedfishKind::supply_input, RedfishShape::power_supplies, "", {power_path}, 1,
                     "Power.PowerSupplies[].PowerInputWatts (" + std::to_string(n) + " supplies)");
        }
        auto pc = power->find("PowerControl");
        if (pc != power->end() && pc->is_array() && !pc->empty() && (*pc)[0].is_object() &&
            has_number((*pc)[0], "PowerConsumedWatts"))
          control = plan(RedfishKind::power_control, RedfishShape::power_control, "", {power_path},
                         1, "Power.PowerControl[0].PowerConsumedWatts");
      }
    }
    for (auto* p : {&energy, &input, &chassis_power, &control}) {
      if (!*p) continue;
      if (!c.best) {
        c.best = *p;
      } else if (c.best->kind == RedfishKind::energy_counter && !c.power) {
        c.power = *p;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

Result<RedfishValue> read_redfish(const RedfishPlan& plan, const RedfishGet& get) {
  RedfishValue out;
  for (const std::string& url : plan.urls) {
    auto doc = get(url);
    if (!doc) return doc.error();
    switch (plan.shape) {
      case RedfishShape::metrics_field: {
        auto f = doc->find(plan.field);
        if (f == doc->end() || !f->is_object() || !f->contains("Reading"))
          return malformed(url, plan.field + ".Reading: absent");
        auto v = number_at((*f)["Reading"], url, plan.field + ".Reading");
        if (!v) return v.error();
        out.value += *v;
        break;
      }
      case RedfishShape::sensor: {
        if (!doc->contains("Reading")) return malformed(url, "Reading: absent");
        auto v = number_at((*doc)["Reading"], url, "Reading");
        if (!v) return v.error();
        out.value += *v;
        if (std::string t = text(*doc, "ReadingTime"); !t.empty()) {
          auto ms = parse_redfish_time(t);
          if (!ms)
            return malformed(url, "ReadingTime: not a date-time: \"" + t.substr(0, 40) + "\"");
          out.reading_ms = *ms;
        }
        break;
      }
      case RedfishShape::power_supplies: {
        auto s = doc->find("PowerSupplies");
        if (s == doc->end() || !s->is_array()) return malformed(url, "PowerSupplies: absent");
        int n = 0;
        for (const json& e : *s) {
          // A supply that is out or not reporting shows null: the others still draw.
          if (!e.is_object() || !e.contains("PowerInputWatts") || e["PowerInputWatts"].is_null())
            continue;
          auto v = number_at(e["PowerInputWatts"], url, "PowerSupplies[].PowerInputWatts");
          if (!v) return v.error();
          out.value += *v;
          ++n;
        }
        if (n == 0) return malformed(url, "no supply reports PowerInputWatts");
        break;
      }
      case RedfishShape::power_control: {
        auto pc = doc->find("PowerControl");
        if (pc == doc->end() || !pc->is_array() || pc->empty() || !(*pc)[0].is_object() ||
            !(*pc)[0].contains("PowerConsumedWatts"))
          return malformed(url, "PowerControl[0].PowerConsumedWatts: absent");
        auto v =
            number_at((*pc)[0]["PowerConsumedWatts"], url, "PowerControl[0].PowerConsumedWatts");
        if (!v) return v.error();
        out.value += *v;
        break;
      }
    }
  }
  if (plan.kind == RedfishKind::energy_counter) out.value *= plan.unit_joules;
  return out;
}

RedfishSource::RedfishSource(RedfishOptions options, std::unique_ptr<RedfishTransport> transport)
    : options_(std::move(options)), transport_(std::move(transport)) {}

RedfishSource::~RedfishSource() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    abort_ = true;  // a poll waiting on a hanging BMC gives up now
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  abort_ = false;  // the logout is allowed its one request
  if (client_) client_->logout();
}

double RedfishSource::now_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

Availability RedfishSource::probe() {
  Availability a;
  if (options_.url.empty()) {
    a.reason = "no --redfish-url";
    a.remedy = "give the BMC's URL with --redfish-url and a read-only account's credential files";
    return a;
  }
  auto base = redfish_base_url(options_.url);
  if (!base) {
    a.reason = base.error().message();
    return a;
  }
  if (!client_) {
    std::string user, password;
    for (auto [file, out, option] :
         {std::tuple{&options_.user_file, &user, "--redfish-user-file"},
          std::tuple{&options_.password_file, &password, "--redfish-password-file"}}) {
      if (file->empty()) {
        a.reason = std::string("no ") + option;
        a.remedy = "give a read-only BMC account's user and password files";
        return a;
      }
      auto secret = read_secret_file(*file);
      if (!secret) {
        a.reason = std::string(option) + ": " + secret.error().message();
        return a;
      }
      *out = std::move(*secret);
    }
    if (!transport_) {
      RedfishTransportOptions t;
      t.base_url = *base;
      t.user = user;
      t.password = password;
      t.ca_file = options_.ca_file;
      t.insecure_skip_verify = options_.insecure_skip_verify;
      t.timeout_s = static_cast<double>(options_.timeout.count()) / 1000.0;
      t.stop = &abort_;
      transport_ = make_curl_redfish_transport(std::move(t));
    }
    client_ = std::make_unique<RedfishClient>(std::move(transport_), std::move(user),
                                              std::move(password));
  }
  if (thread_.joinable()) {  // doctor probing a running source: keep what was found
    a.available = plan_.has_value();
    a.reason = plan_ ? "chassis " + plan_->chassis + ": " + plan_->what : "no plan";
    return a;
  }
  auto found = discover_redfish([this](const std::string& p) { return client_->get(p); });
  if (!found) {
    a.reason = "cannot walk " + redact_url(options_.url) + ": " + found.error().message();
    a.remedy = "check the URL, the CA (--redfish-ca-file) and the account";
    return a;
  }
  std::vector<const RedfishChassis*> with_power;
  std::string all;
  for (const RedfishChassis& c : *found) {
    all += (all.empty() ? "" : ", ") + c.id;
    if (c.best) with_power.push_back(&c);
  }
  const RedfishChassis* chosen = nullptr;
  if (!options_.chassis.empty()) {
    for (const RedfishChassis& c : *found)
      if (c.id == options_.chassis) chosen = &c;
    if (!chosen) {
      a.reason = "no chassis \"" + options_.chassis + "\" (the service has: " + all + ")";
      return a;
    }
    if (!chosen->best) {
      a.reason = "chassis " + chosen->id + " has no power or energy reading";
      return a;
    }
  } else if (with_power.size() > 1) {
    std::string ids;
    for (const RedfishChassis* c : with_power)
      ids += (ids.empty() ? "" : ", ") + c->id + " (" + c->best->what + ")";
    throw SourceUsageError("redfish: several chassis have power data: " + ids +
                           "; choose one with --redfish-chassis ID");
  } else if (with_power.empty()) {
    a.reason = "no chassis with a power or energy reading (chassis: " + all + ")";
    return a;
  } else {
    chosen = with_power.front();
  }
  plan_ = chosen->best;
  power_plan_ = chosen->power;
  auth_ = client_->auth();
  a.available = true;
  a.reason = "chassis " + plan_->chassis + ": " + std::string(to_string(plan_->kind)) + " from " +
             plan_->what + (power_plan_ ? "; between its steps at " + power_plan_->what : "") +
             "; auth " + std::string(client_->auth()) + "; every " +
             std::to_string(options_.interval.count() / 1000.0).substr(0, 4) + " s";
  if (plan_->kind != RedfishKind::energy_counter) a.reason += "; integrated power";
  return a;
}

void RedfishSource::poll_once() {
  if (!plan_ || !client_) return;
  RedfishGet get = [this](const std::string& p) { return client_->get(p); };
  auto v = read_redfish(*plan_, get);
  std::optional<double> hint;
  if (v && power_plan_) {
    if (auto p = read_redfish(*power_plan_, get)) hint = p->value;
  }
  const double now = now_s();
  std::lock_guard<std::mutex> lock(mu_);
  auth_ = client_->auth();  // the client is the poll thread's; the tick reads this copy
  if (!v) {
    ++polls_failed_;
    ++failures_;
    last_error_ = v.error().message();
    return;
  }
  ++polls_ok_;
  failures_ = 0;
  double at = now;
  if (v->reading_ms) {
    // ReadingTime is on the BMC's clock: taken as an age, bounded so that a BMC whose clock is
    // off places a reading no later than now and no earlier than two minutes (or two polls)
    // back, what a BMC refreshing once a minute can show.
    double age = static_cast<double>(wall_clock_ms() - *v->reading_ms) / 1000.0;
    double oldest = std::max(120.0, 2.0 * static_cast<double>(options_.interval.count()) / 1000.0);
    at = now - std::clamp(age, 0.0, oldest);
  }
  if (plan_->kind == RedfishKind::energy_counter) {
    if (hint) track_.rate_hint(*hint);
    track_.counter(v->value, at, now);
  } else {
    track_.power(v->value, at, now);
  }
}

void RedfishSource::run() {
  while (!stop_) {
    poll_once();
    std::unique_lock<std::mutex> lock(mu_);
    wake_.wait_for(lock, options_.interval, [this] { return stop_.load(); });
  }
}

Sample RedfishSource::sample() {
  Sample out;
  if (!plan_) return out;
  if (!started_) {
    started_ = true;
    if (options_.insecure_skip_verify)
      log_line(
          "redfish: --redfish-insecure-skip-verify: the BMC's certificate is not checked; "
          "anyone on the path can read its answers and the credentials");
    if (options_.url.rfind("http://", 0) == 0)
      log_line("redfish: plain http: the BMC's credentials travel unencrypted");
    thread_ = std::thread([this] { run(); });
  }
  const double now = now_s();
  std::lock_guard<std::mutex> lock(mu_);
  std::string why;
  if (failures_ >= 3) {
    why = "no good answer for " + std::to_string(failures_) + " polls: " + last_error_;
  } else if (plan_->kind == RedfishKind::energy_counter && track_.has_reading()) {
    double interval =
        std::max(track_.step_interval(), static_cast<double>(options_.interval.count()) / 1000.0);
    double limit = track_.step_interval() > 0 ? 3 * interval : 180;
    if (now - track_.last_step_s() > limit)
      why = "its energy counter has not moved for " +
            std::to_string(static_cast<int>(now - track_.last_step_s())) + " s";
  }
  if (why != stall_reason_) {
    log_line(why.empty() ? "redfish: chassis " + plan_->chassis + " answers again"
                         : "redfish: chassis " + plan_->chassis + " stalled: " + why +
                               "; the next source stands in for the platform domain");
    stall_reason_ = why;
  }
  if (!track_.has_reading()) return out;
  Reading r;
  r.domain = "platform";
  r.key = "redfish:" + plan_->chassis;
  r.kind = ReadingKind::energy_counter;
  r.unit_joules = 1e-3;
  r.raw = static_cast<uint64_t>(std::llround(track_.energy(now) * 1000.0));
  r.known_stalled = !why.empty();
  out.readings.push_back(std::move(r));
  return out;
}

void RedfishSource::append_families(std::vector<Family>& out) const {
  if (!plan_) return;
  std::lock_guard<std::mutex> lock(mu_);
  out.push_back({"wattprobe_redfish_info",
                 "The BMC reading the redfish source uses: chassis, kind (energy_counter, "
                 "supply_input, chassis_power, power_control), where it is read, whether its "
                 "energy is integrated power, the authentication, and whether it is stalled and "
                 "why.",
                 MetricType::gauge,
                 {{{{"chassis", plan_->chassis},
                    {"kind", std::string(to_string(plan_->kind))},
                    {"reading", plan_->what},
                    {"integrated", plan_->kind == RedfishKind::energy_counter ? "false" : "true"},
                    {"auth", std::string(auth_)},
                    {"state", stall_reason_.empty() ? "ok" : "stalled"},
                    {"reason", stall_reason_}},
                   1.0}}});
  out.push_back({"wattprobe_redfish_power_watts",
                 "The chassis' power as the BMC last gave it (for an energy counter, the rate "
                 "the agent advances it at between the counter's steps).",
                 MetricType::gauge,
                 {{{{"chassis", plan_->chassis}}, track_.watts()}}});
  out.push_back({"wattprobe_redfish_polls_total",
                 "Polls of the BMC, by result (ok, error: a status other than 200, no answer in "
                 "--redfish-timeout, a malformed or oversized answer).",
                 MetricType::counter,
                 {{{{"result", "ok"}}, static_cast<double>(polls_ok_)},
                  {{{"result", "error"}}, static_cast<double>(polls_failed_)}}});
}

std::unique_ptr<EnergySource> make_redfish_source(const RedfishOptions& options) {
  return std::make_unique<RedfishSource>(options);
}

}  // namespace wattprobe
