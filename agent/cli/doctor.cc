#include "agent/cli/doctor.h"

#include "agent/accounting_choice.h"
#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"
#include "agent/carbon/carbon.h"
#include "agent/carbon/grid/registry.h"
#include "agent/device_health.h"
#include "agent/privileges.h"
#include "agent/settings.h"
#include "bpf/sched_account_loader.h"
#include "collectors/gpu/gpu_split_source.h"
#include "collectors/registry.h"
#include "collectors/units/units_sink.h"

namespace wattprobe {

int run_doctor(const Options& options, std::ostream& out) {
  SourceSettings settings = source_settings(options);
  settings.doctor = true;
  SourceChoice choice = choose_sources(options.sources, settings);
  out << "Energy sources (priority order; each counter read twice, 200 ms of CPU burn apart):\n";
  for (const SourceStatus& st : choice.status) {
    const char* state = st.stalled                  ? "STALLED, not available"
                        : st.availability.available ? "available"
                                                    : "not available";
    out << "  " << st.name << ": " << state << " - " << st.availability.reason << "\n";
    if (st.stalled) {
      out << "      to fix: " << st.availability.remedy << "\n";
    } else if (!st.availability.available && !st.availability.remedy.empty()) {
      out << "      to enable: " << st.availability.remedy << "\n";
    } else if (!st.stalled_counters.empty()) {
      out << "      stalled counters (" << kStalledCause << "): " << join(st.stalled_counters, ", ")
          << "\n      to fix: " << kStalledRemedy << "\n";
    }
    out << "      run: " << (st.chosen ? "uses it" : "does not use it") << " (" << st.why << ")\n";
  }
  if (choice.chosen.empty()) {
    out << "run would use: nothing - no source is readable\n";
  } else {
    out << "run would use:";
    for (const auto& s : choice.chosen) out << " " << s->name();
    out << "\n";
  }
  if (!choice.measured) {
    out << "NOTE: no measured energy source is readable; every figure would be an ESTIMATE "
           "(source=\"model\", measured=\"false\").\n";
  } else if (choice.estimated_cpu) {
    out << "NOTE: no measured source covers the CPU: its package energy would be an ESTIMATE "
           "(source=\"model\", measured=\"false\"); the measured domains stay "
           "measured=\"true\".\n";
  }
  // Each source's own section (the GPUs it reads, the VM's host file), as it wrote it.
  for (const SourceStatus& st : choice.status) {
    if (st.doctor.title.empty()) continue;
    out << "\n" << st.doctor.title << ":\n";
    if (!st.availability.available) {
      out << "  none: " << st.availability.reason << "\n";
      if (!st.availability.remedy.empty())
        out << "      to enable: " << st.availability.remedy << "\n";
    }
    for (const std::string& line : st.doctor.lines) out << "  " << line << "\n";
  }

  out << "\nCPU accounting:\n";
  std::string report = BpfAccounting::kernel_support_report(options.paths);
  std::size_t start = 0;
  while (start < report.size()) {
    std::size_t end = report.find('\n', start);
    if (end == std::string::npos) end = report.size();
    out << "  " << report.substr(start, end - start) << "\n";
    start = end + 1;
  }
  auto acc = choose_accounting(accounting_settings(options));
  if (acc.ok()) {
    out << "run would use: " << acc->accounting->mode() << " (" << acc->why << ")\n";
  } else {
    out << "run would fail: " << acc.error().message() << "\n";
  }
  std::vector<std::string> chosen;
  for (const SourceStatus& st : choice.status) {
    if (st.chosen || st.standby) chosen.push_back(st.name);  // as run keeps them
  }
  bool bpf = acc.ok() && accounting_needs_cap_bpf(*acc->accounting);
  std::vector<int> keep = capabilities_needed(chosen, bpf);
  uint64_t mask = 0;
  for (int c : keep) mask |= uint64_t{1} << c;
  const RunUser run_user = choose_run_user(options.user);
  out << "\nPrivileges:\n  now: " << current_capabilities() << "\n  run would keep: "
      << (keep.empty() ? std::string("no capabilities") : capability_names(mask))
      << " and drop every other capability before serving\n";
  if (run_user.refused) {
    out << "  run would refuse to start: " << run_user.why << "\n";
  } else {
    out << "  run would run as: " << (run_user.user.empty() ? "the current user" : run_user.user)
        << " (" << run_user.why << ")\n";
  }

  out << "\nCarbon:\n";
  // Embodied carbon counts the GPUs the chosen sources read, as run does, rather than every
  // display device.
  CarbonOptions carbon_options = options.carbon;
  int gpus = 0;
  for (const auto& source : choice.chosen) {
    if (auto split = make_gpu_split(*source, options.paths)) gpus += split->embodied_gpus();
  }
  if (gpus > 0) carbon_options.listed_gpus = gpus;
  std::unique_ptr<Carbon> made = make_carbon(options.paths, carbon_options);
  Carbon& carbon = *made;
  // One fetch, so doctor shows whether the configured grid API answers (never the key).
  carbon.grid().refresh_now(wall_clock_ms());
  out << carbon.doctor_report();
  DeviceHealth health(options.paths, parse_install_date(options.carbon.install_date));
  out << health.doctor_report(wall_clock_ms());
  out << units_doctor_report(options.units);
  return choice.measured ? 0 : 1;
}

}  // namespace wattprobe
