#include "agent/cli/doctor.h"

#include <optional>
#include <set>

#include "agent/accounting_choice.h"
#include "agent/base/text_file.h"
#include "agent/base/utc_time.h"
#include "agent/carbon/carbon.h"
#include "agent/carbon/grid/registry.h"
#include "agent/device_health.h"
#include "agent/privileges.h"
#include "agent/settings.h"
#include "bpf/sched_account_loader.h"
#include "collectors/energy/host_energy.h"
#include "collectors/energy/hwmon.h"
#include "collectors/energy/nvml.h"
#include "collectors/gpu/drm_fdinfo.h"
#include "collectors/registry.h"
#include "collectors/units/units_sink.h"

namespace wattprobe {

int run_doctor(const Options& options, std::ostream& out) {
  SourceChoice choice = choose_sources(options.sources, source_settings(options));
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
  out << "\nGPUs (nvml, " << options.nvml_library.string() << "):\n";
  NvmlSource nvml(options.nvml_library);
  Availability gpu = nvml.probe();
  if (!gpu.available) {
    out << "  none: " << gpu.reason << "\n";
    if (!gpu.remedy.empty()) out << "      to enable: " << gpu.remedy << "\n";
  }
  for (const std::string& line : nvml.doctor_report()) out << "  " << line << "\n";

  // hwmon's GPU sensors are split by the kernel's DRM busy time of each process; say whether any
  // process holds a client of the GPU now, since otherwise its dynamic energy is unattributed.
  HwmonSource hwmon(options.paths);
  if (hwmon.probe().available) {
    bool header = false;
    std::optional<DrmScan> scan;
    for (const HwmonSource::Sensor& sensor : hwmon.sensors()) {
      if (sensor.domain != "gpu") continue;
      if (!header) out << "\nGPUs (hwmon):\n";
      header = true;
      out << "  " << sensor.key << (sensor.label.empty() ? "" : " (" + sensor.label + ")")
          << ", GPU " << sensor.socket << ": energy measured; split by process: ";
      if (sensor.pci_address.empty()) {
        out << "none - the chip names no PCI device to match the kernel's DRM clients with, so "
               "its dynamic energy is unattributed, never split by CPU time\n";
        continue;
      }
      if (!scan) scan = scan_drm_clients(options.paths);
      std::set<uint32_t> holders;
      for (const DrmClient& c : scan->clients) {
        if (c.pdev == sensor.pci_address) holders.insert(c.pid);
      }
      out << "DRM busy time of " << sensor.pci_address << " (drm-engine-* in "
          << options.paths.proc().string() << "/<pid>/fdinfo); ";
      if (holders.empty()) {
        out << "no process holds a DRM client of it now, so its dynamic energy is unattributed "
               "until one does, never split by CPU time\n";
      } else {
        out << holders.size() << (holders.size() == 1 ? " process holds" : " processes hold")
            << " a DRM client of it now\n";
      }
    }
  }

  if (!options.host_energy_path.empty()) {
    out << "\nVM passthrough (--host-energy-path " << options.host_energy_path.string() << "):\n";
    for (const std::string& line : HostEnergySource(options.host_energy_path).doctor_report()) {
      out << "  " << line << "\n";
    }
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
  // Embodied carbon counts the GPUs NVML lists, as run does, rather than every display device.
  CarbonOptions carbon_options = options.carbon;
  if (gpu.available && !nvml.devices().empty()) {
    carbon_options.nvml_gpus = static_cast<int>(nvml.devices().size());
  }
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
