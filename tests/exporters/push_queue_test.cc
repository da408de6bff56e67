// The delivery half every push protocol shares, on its own: a protocol that joins records with
// newlines, against a receiver on 127.0.0.1 that answers as the test says. What remote-write and
// OTLP add (their encodings) is tested with them; what they share is tested once, here.

#include "exporters/push_queue.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/fake_http_receiver.h"
#include "tests/support/temp_tree.h"

namespace wattprobe {
namespace {

using testing::FakeHttpReceiver;
using testing::TempTree;
using namespace std::chrono_literals;

/// Records joined by newlines, one header naming the protocol.
class LinesProtocol : public PushProtocol {
 public:
  bool build_request(const QueueBatch& batch, std::string* body, std::size_t* samples,
                     uint64_t* corrupt) override {
    body->clear();
    for (const std::string& p : batch.payloads) *body += p + "\n";
    *samples = batch.samples;
    *corrupt = 0;
    return !batch.payloads.empty();
  }
  Result<Request> request() override {
    Request r;
    r.header_lines = {"X-Protocol: lines"};
    return r;
  }
};

PushQueueOptions options_for(const FakeHttpReceiver& receiver, const TempTree& tree) {
  PushQueueOptions o;
  o.url = receiver.url("/push");
  o.name = "lines";
  o.family = "lines";
  o.queue_dir = tree.root() / "queue";
  o.queue_fsync_each_append = false;
  o.batch_interval = 20ms;
  o.backoff_min = 20ms;
  o.backoff_max = 100ms;
  o.request_timeout = 2s;
  o.stop_flush_timeout = 500ms;
  return o;
}

std::vector<std::string> bodies(const FakeHttpReceiver& receiver) {
  std::vector<std::string> out;
  for (const auto& r : receiver.requests()) out.push_back(r.body);
  return out;
}

TEST(PushQueue, DeliversEveryRecordInOrderWithTheProtocolsHeaders) {
  TempTree tree;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(204); });
  LinesProtocol protocol;
  PushQueue queue(options_for(receiver, tree), protocol);
  ASSERT_TRUE(queue.start().ok());
  for (int i = 0; i < 5; ++i) queue.append("tick" + std::to_string(i), 2);
  ASSERT_TRUE(queue.wait_until_drained(10s));
  std::string all;
  for (const std::string& b : bodies(receiver)) all += b;
  EXPECT_EQ(all, "tick0\ntick1\ntick2\ntick3\ntick4\n");
  ASSERT_FALSE(receiver.requests().empty());
  EXPECT_EQ(receiver.requests()[0].headers.at("x-protocol"), "lines");
  EXPECT_EQ(receiver.requests()[0].method, "POST");
  EXPECT_EQ(queue.counters().samples_sent, 10u);
}

TEST(PushQueue, A5xxIsRetriedUntilItIsTakenAndNothingIsLost) {
  TempTree tree;
  int calls = 0;
  FakeHttpReceiver receiver(
      [&calls](const auto&) { return FakeHttpReceiver::answer(++calls <= 2 ? 503 : 200); });
  LinesProtocol protocol;
  PushQueue queue(options_for(receiver, tree), protocol);
  ASSERT_TRUE(queue.start().ok());
  queue.append("only", 1);
  ASSERT_TRUE(queue.wait_until_drained(10s));
  PushQueue::Counters c = queue.counters();
  EXPECT_EQ(c.failed_http_5xx, 2u);
  EXPECT_GE(c.requests_retried, 2u);
  EXPECT_EQ(c.samples_sent, 1u);
  EXPECT_EQ(bodies(receiver).back(), "only\n");
}

TEST(PushQueue, A4xxDropsTheBatchAsRejectedRatherThanBlockingTheQueue) {
  TempTree tree;
  int calls = 0;
  FakeHttpReceiver receiver(
      [&calls](const auto&) { return FakeHttpReceiver::answer(++calls == 1 ? 400 : 200); });
  LinesProtocol protocol;
  PushQueue queue(options_for(receiver, tree), protocol);
  ASSERT_TRUE(queue.start().ok());
  queue.append("refused", 3);
  ASSERT_TRUE(queue.wait_until_drained(10s));
  queue.append("taken", 1);
  ASSERT_TRUE(queue.wait_until_drained(10s));
  PushQueue::Counters c = queue.counters();
  EXPECT_EQ(c.dropped_rejected, 3u);
  EXPECT_EQ(c.failed_http_4xx, 1u);
  EXPECT_EQ(c.samples_sent, 1u);
  EXPECT_EQ(bodies(receiver).back(), "taken\n");
}

TEST(PushQueue, WhatIsQueuedWhenTheReceiverIsDownIsSentByTheNextRun) {
  TempTree tree;
  LinesProtocol protocol;
  {
    FakeHttpReceiver down([](const auto&) { return FakeHttpReceiver::answer(503); });
    PushQueue queue(options_for(down, tree), protocol);
    ASSERT_TRUE(queue.start().ok());
    queue.append("kept1", 1);
    queue.append("kept2", 1);
    queue.stop();
    EXPECT_EQ(queue.counters().samples_sent, 0u);
  }
  FakeHttpReceiver up([](const auto&) { return FakeHttpReceiver::answer(200); });
  PushQueue queue(options_for(up, tree), protocol);
  ASSERT_TRUE(queue.start().ok());
  ASSERT_TRUE(queue.wait_until_drained(10s));
  std::string all;
  for (const std::string& b : bodies(up)) all += b;
  EXPECT_EQ(all, "kept1\nkept2\n");
}

TEST(PushQueue, ItsFamiliesAreNamedAfterTheProtocol) {
  TempTree tree;
  FakeHttpReceiver receiver([](const auto&) { return FakeHttpReceiver::answer(200); });
  LinesProtocol protocol;
  PushQueue queue(options_for(receiver, tree), protocol);
  ASSERT_TRUE(queue.start().ok());
  std::vector<Family> families;
  queue.append_families(families);
  ASSERT_FALSE(families.empty());
  for (const Family& f : families) {
    EXPECT_EQ(f.name.rfind("wattprobe_agent_lines_", 0), 0u) << f.name;
  }
}

}  // namespace
}  // namespace wattprobe
