#pragma once

#include "agent/tick/energy_meter.h"

namespace wattprobe::bench {

/// One tick of a one-socket host: package and dram, 50 J each over 1 s.
inline NodeEnergy two_domains(double total_joules = 0) {
  NodeEnergy e;
  e.seconds = 1;
  for (const char* d : {"package", "dram"}) {
    DomainEnergy r;
    r.source = "rapl_powercap";
    r.domain = d;
    r.socket = 0;
    r.joules = 50;
    r.watts = 50;
    r.total_joules = total_joules;
    e.domains.push_back(r);
  }
  return e;
}

}  // namespace wattprobe::bench
