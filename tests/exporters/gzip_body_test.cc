#include "exporters/gzip_body.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

#include "tests/support/gunzip.h"

namespace wattprobe {
namespace {

using testing::gunzip;

std::string join(std::string_view first, std::string_view second, int level) {
  const DeflatedPiece a = deflate_piece(first, level, /*last=*/false);
  const DeflatedPiece b = deflate_piece(second, level, /*last=*/true);
  return std::string(gzip_header()) + a.bytes + b.bytes + gzip_trailer(a, b);
}

std::string metrics_like_text(std::size_t lines) {
  std::string text;
  std::mt19937 rng(7);
  for (std::size_t i = 0; i < lines; ++i) {
    text += "wattprobe_workload_energy_joules_total{workload=\"workload-" + std::to_string(i) +
            ".service\",kind=\"service\"} " + std::to_string(rng() % 100000) + "." +
            std::to_string(rng() % 1000) + "\n";
  }
  return text;
}

/// Two pieces deflated apart decode, as one gzip body, to their texts one after the other.
TEST(GzipBody, JoinedPiecesDecodeToTheWholeText) {
  const std::string head = "# HELP exposer_scrapes_total Number.\nexposer_scrapes_total 3\n";
  const std::string big = metrics_like_text(20000);
  for (int level : {1, 6, 9}) {
    SCOPED_TRACE(level);
    EXPECT_EQ(gunzip(join(head, big, level)), head + big);
    EXPECT_EQ(gunzip(join("", big, level)), big);
    EXPECT_EQ(gunzip(join(head, "", level)), head);
    EXPECT_EQ(gunzip(join("", "", level)), "");
  }
}

/// The text compresses: what makes gzip worth its CPU on a scrape.
TEST(GzipBody, MetricsTextShrinks) {
  const std::string big = metrics_like_text(10000);
  const DeflatedPiece piece = deflate_piece(big, 1, /*last=*/true);
  EXPECT_LT(piece.bytes.size() * 4, big.size());
  EXPECT_EQ(piece.size, big.size());
}

/// A wrong CRC is caught by the decoder: the trailer is what makes the join checkable.
TEST(GzipBody, DecoderChecksTheTrailer) {
  std::string body = join("abc", "def", 1);
  body[body.size() - 8] ^= 1;
  EXPECT_EQ(gunzip(body), "<error>");
}

}  // namespace
}  // namespace wattprobe
