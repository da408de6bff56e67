#include "tests/support/snapshot_collectable.h"

#include <prometheus/metric_family.h>

#include <limits>

namespace wattprobe::testing {
namespace {

class SnapshotCollectable : public prometheus::Collectable {
 public:
  explicit SnapshotCollectable(std::function<SnapshotPtr()> snapshot)
      : snapshot_(std::move(snapshot)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    SnapshotPtr snap = snapshot_();
    std::vector<prometheus::MetricFamily> out;
    if (!snap) return out;
    out.reserve(snap->families.size());
    for (const Family& f : snap->families) {
      prometheus::MetricFamily mf;
      mf.name = f.name;
      mf.help = f.help;
      if (f.type == MetricType::histogram) {
        mf.type = prometheus::MetricType::Histogram;
        if (f.histogram) {
          prometheus::ClientMetric m;
          m.histogram.sample_count = f.histogram->count;
          m.histogram.sample_sum = f.histogram->sum;
          for (std::size_t i = 0; i < f.histogram->bounds.size(); ++i) {
            prometheus::ClientMetric::Bucket b;
            b.upper_bound = f.histogram->bounds[i];
            b.cumulative_count = f.histogram->cumulative[i];
            m.histogram.bucket.push_back(b);
          }
          prometheus::ClientMetric::Bucket inf;
          inf.upper_bound = std::numeric_limits<double>::infinity();
          inf.cumulative_count = f.histogram->count;
          m.histogram.bucket.push_back(inf);
          mf.metric.push_back(std::move(m));
        }
        out.push_back(std::move(mf));
        continue;
      }
      mf.type = f.type == MetricType::counter ? prometheus::MetricType::Counter
                                              : prometheus::MetricType::Gauge;
      mf.metric.reserve(f.series.size());
      for (const Series& s : f.series) {
        prometheus::ClientMetric m;
        m.label.reserve(s.labels.size());
        for (const auto& [k, v] : s.labels) m.label.push_back({k, v});
        if (f.type == MetricType::counter) {
          m.counter.value = s.value;
        } else {
          m.gauge.value = s.value;
        }
        mf.metric.push_back(std::move(m));
      }
      out.push_back(std::move(mf));
    }
    return out;
  }

 private:
  std::function<SnapshotPtr()> snapshot_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> make_snapshot_collectable(
    std::function<SnapshotPtr()> snapshot) {
  return std::make_shared<SnapshotCollectable>(std::move(snapshot));
}

}  // namespace wattprobe::testing
