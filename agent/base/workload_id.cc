#include "agent/base/workload_id.h"

namespace wattprobe {

Labels workload_labels(const WorkloadId& id, std::size_t extra) {
  // The names are built once: a tick labels every workload several times.
  static const std::string kWorkload = "workload", kKind = "kind", kNamespace = "namespace",
                           kPod = "pod", kContainer = "container";
  Labels l;
  l.reserve(5 + extra);
  l.emplace_back(kWorkload, id.workload);
  l.emplace_back(kKind, id.kind);
  l.emplace_back(kNamespace, id.namespace_);
  l.emplace_back(kPod, id.pod);
  l.emplace_back(kContainer, id.container);
  return l;
}

std::string workload_key(const Labels& labels) {
  std::string key;
  for (std::string_view name : {"workload", "kind", "namespace", "pod", "container"}) {
    key += label_value(labels, name);
    key += '\x1f';
  }
  return key;
}

std::optional<std::string> vm_folder_name(const WorkloadId& id) {
  if (id.kind != "vm") return std::nullopt;
  std::string name = id.workload;
  if (!id.namespace_.empty() && name.starts_with(id.namespace_ + "/")) {
    name[id.namespace_.size()] = '_';
  }
  if (name.empty() || name == "." || name == ".." || name.size() > 255) return std::nullopt;
  for (char c : name) {
    if (c == '/' || static_cast<unsigned char>(c) < 0x20) return std::nullopt;
  }
  return name;
}

}  // namespace wattprobe
