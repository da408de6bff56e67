#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace wattprobe {

/// Text deflated on its own (RFC 1951, raw), to be joined with other pieces into one gzip body
/// (RFC 1952) without deflating them again: what pigz does with its blocks. It lets a body whose
/// bulk is kept per snapshot carry a few lines that change on every answer.
struct DeflatedPiece {
  std::string bytes;
  uint32_t crc = 0;   // CRC-32 of the text
  uint64_t size = 0;  // of the text, in bytes
};

/// Deflates `text` at zlib `level` (1-9). A piece that is not `last` ends with an empty stored
/// block (zlib's sync flush), on a byte boundary, so the next piece's blocks can follow it; the
/// last piece ends with the final block. Throws std::runtime_error if zlib fails (out of memory).
DeflatedPiece deflate_piece(std::string_view text, int level, bool last);

/// The 10 bytes every gzip body starts with (no name, no time).
std::string_view gzip_header();

/// The 8 bytes after the pieces: the CRC-32 and size of `first` and `second`'s texts together.
std::string gzip_trailer(const DeflatedPiece& first, const DeflatedPiece& second);

}  // namespace wattprobe
