#include "exporters/gzip_body.h"

#include <zlib.h>

#include <stdexcept>

namespace wattprobe {

DeflatedPiece deflate_piece(std::string_view text, int level, bool last) {
  DeflatedPiece piece;
  piece.size = text.size();
  piece.crc =
      static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), text.size()));
  z_stream zs{};
  // Negative window bits: raw deflate, since the gzip header and trailer are written once for
  // all pieces.
  if (deflateInit2(&zs, level, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("zlib: cannot start deflate");
  }
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  zs.avail_in = static_cast<uInt>(text.size());
  // deflateBound covers a finished stream; a sync flush adds its 5-byte empty block.
  piece.bytes.resize(deflateBound(&zs, static_cast<uLong>(text.size())) + 16);
  const int flush = last ? Z_FINISH : Z_SYNC_FLUSH;
  int rc = Z_OK;
  for (;;) {
    zs.next_out = reinterpret_cast<Bytef*>(piece.bytes.data() + zs.total_out);
    zs.avail_out = static_cast<uInt>(piece.bytes.size() - zs.total_out);
    rc = deflate(&zs, flush);
    if (rc == Z_STREAM_ERROR) break;
    if (last ? rc == Z_STREAM_END : zs.avail_out != 0) break;
    piece.bytes.resize(piece.bytes.size() * 2);
  }
  piece.bytes.resize(zs.total_out);
  deflateEnd(&zs);
  if (rc == Z_STREAM_ERROR) throw std::runtime_error("zlib: deflate failed");
  return piece;
}

std::string_view gzip_header() {
  // Magic, deflate, no flags, no modification time, no extra flags, OS 3 (Unix).
  static constexpr char kHeader[] = {'\x1f', '\x8b', '\x08', 0, 0, 0, 0, 0, 0, '\x03'};
  return {kHeader, sizeof kHeader};
}

std::string gzip_trailer(const DeflatedPiece& first, const DeflatedPiece& second) {
  const uint32_t crc = static_cast<uint32_t>(
      crc32_combine(first.crc, second.crc, static_cast<z_off_t>(second.size)));
  // ISIZE is the size modulo 2^32 (RFC 1952).
  const uint32_t size = static_cast<uint32_t>(first.size + second.size);
  std::string out(8, '\0');
  for (int i = 0; i < 4; ++i) {
    out[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    out[4 + i] = static_cast<char>((size >> (8 * i)) & 0xff);
  }
  return out;
}

}  // namespace wattprobe
