#pragma once

#include <cstddef>
#include <string>

namespace wattprobe {

/// libbpf has one process-wide print callback, so both loaders share this one. It stays quiet
/// (docs/architecture.md: the BPF loader prints nothing itself) but keeps the tail of what libbpf
/// said, which carries the verifier's log when a load fails, for the loader's error.
/// Installs the callback and forgets what was kept.
void capture_libbpf_log();

/// What libbpf said since capture_libbpf_log() or the last take, without trailing whitespace;
/// with `max_bytes`, only the last whole lines within it.
std::string take_libbpf_log(std::size_t max_bytes = 0);

}  // namespace wattprobe
