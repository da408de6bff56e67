#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/base/host_paths.h"
#include "collectors/energy_source.h"
#include "collectors/gpu/gpu_power_limit.h"

namespace wattprobe {

/// One per-process utilisation sample of NVML: the driver names one process per sample period
/// (~1/6 s), like a snapshot.
struct GpuProcessSample {
  uint32_t pid = 0;
  uint64_t timestamp_us = 0;
  unsigned sm_util = 0;  // 0..100
};

/// One process's accounting statistics (nvmlDeviceGetAccountingStats, accounting mode on): the
/// share of its lifetime during which one of its kernels ran. Unlike the samples it is kept by
/// the driver for every process, all the time, so periodic work cannot hide from it; but it is a
/// whole percent over the whole lifetime, so its resolution coarsens as the process ages.
struct GpuAccountingStat {
  uint32_t pid = 0;
  unsigned gpu_util = 0;  // 0..100, over the process's life so far
  uint64_t start_us = 0;  // when the process started, µs since the epoch
};

/// What one GPU told about its users in the last sample(): the input of the per-process split
/// (collectors/gpu/gpu_split.h). Every value was range-checked.
struct GpuActivity {
  int index = -1;
  bool readable = false;                  // the device answered this sample
  double utilisation = -1;                // nvmlUtilization_t.gpu / 100; -1 unknown
  std::vector<uint32_t> running;          // pids holding a compute context
  std::vector<GpuProcessSample> samples;  // newer than those of the previous sample
  /// Where accounting mode is on: the running processes' statistics (those that answered), and
  /// the wall clock they were read at (µs since the epoch), to turn percents into seconds.
  std::vector<GpuAccountingStat> accounting;
  uint64_t accounting_read_us = 0;
  /// Non-empty when the device's energy cannot be split by process, and why ("MIG mode is on:
  /// NVML has no per-process utilisation for MIG devices").
  std::string unsplittable;
};

/// What `doctor` and the gpu info series show about one GPU.
struct GpuDeviceInfo {
  int index = -1;
  std::string uuid, name;
  bool lost = false;                   // NVML_ERROR_GPU_IS_LOST: no more reads until restart
  bool energy_counter = true;          // false: energy is integrated power (pre-Volta)
  std::string mig = "unknown";         // "off", "on", "unknown"
  std::string accounting = "unknown";  // "off", "on", "unknown" (only read, never set)
  std::string energy_status;           // "readable" or the NVML error
  std::string samples_status;          // "readable", "none yet" or the NVML error
  /// nvmlDeviceGetEnforcedPowerLimit in W, read every sample (an administrator may change it);
  /// none where the GPU states none (NOT_SUPPORTED, or a library without the call).
  std::optional<double> power_limit_watts;
  std::string power_limit_status;  // "enforced", or why there is no limit
};

/// `nvml`: NVIDIA GPU energy through NVML, loaded at run time with dlopen, so the build does not
/// depend on CUDA and a host without the driver only loses this source.
///
/// Readings: per GPU, domain "gpu", socket = the NVML device index (the `socket` label of the
/// node families carries the GPU index for domain gpu, so two GPUs never share a series), key
/// "nvml:<index>:<uuid>". Energy is nvmlDeviceGetTotalEnergyConsumption (mJ since the driver
/// loaded), never power × time, except on a GPU whose counter is NOT_SUPPORTED (pre-Volta): there
/// the 1 s average of nvmlDeviceGetPowerUsage is integrated, and wattprobe_gpu_info says
/// energy="integrated_power". A counter below its previous value is a driver reload: the meter
/// counts nothing for that tick instead of a negative or wrapped delta.
///
/// A GPU that answers NVML_ERROR_GPU_IS_LOST is logged once, marked lost and counted every tick
/// as a collector error (reason "absent"); the other GPUs keep measuring.
/// Not thread-safe (the sampling loop owns it).
class NvmlSource : public EnergySource {
 public:
  explicit NvmlSource(std::filesystem::path library);
  ~NvmlSource() override;
  NvmlSource(const NvmlSource&) = delete;
  NvmlSource& operator=(const NvmlSource&) = delete;

  std::string_view name() const override { return "nvml"; }
  bool measures_cpu() const override { return false; }
  Availability probe() override;
  Sample sample() override;

  /// Per GPU, from the last sample().
  const std::vector<GpuActivity>& activity() const { return activity_; }
  const std::vector<GpuDeviceInfo>& devices() const { return info_; }
  const std::string& driver_version() const { return driver_; }
  /// Each GPU's enforced power limit as of the last sample().
  std::vector<GpuPowerLimit> power_limits() const;
  /// Reads each GPU once more (energy, samples, modes) for `doctor`; lines without newlines.
  std::vector<std::string> doctor_report();
  /// "GPUs (nvml, LIBRARY)" with doctor_report()'s lines.
  DoctorSection doctor_section() override;

  struct Api;  // the resolved entry points

 private:
  struct Device;
  void read_device(std::size_t i, Sample& out);
  void read_power_limit(std::size_t i);
  void read_accounting(Device& d, GpuActivity& act, Sample& out, const std::string& where);
  std::string error_string(int code) const;

  std::filesystem::path library_;
  void* handle_ = nullptr;
  std::unique_ptr<Api> api_;
  bool initialised_ = false;
  std::string driver_;
  std::vector<std::unique_ptr<Device>> devices_;
  std::vector<GpuDeviceInfo> info_;
  std::vector<GpuActivity> activity_;
};

std::unique_ptr<EnergySource> make_nvml_source(const std::filesystem::path& library);

}  // namespace wattprobe
