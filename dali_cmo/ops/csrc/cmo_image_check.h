// The cheap bad-image check of dali_cmo, on the bytes a reader has already read.
//
// Same rules and messages as dali_cmo.data.integrity.quick_check (tests compare the two on the
// same files): empty files, formats DALI's decoders cannot read (unknown magic number, GIF,
// HEIF), JPEGs without the end-of-image marker FFD9 in their last 4096 bytes (or, for small
// files, without a start-of-scan marker before it) and PNGs without an IEND chunk in their last
// 1024 bytes.
#ifndef DALI_CMO_CMO_IMAGE_CHECK_H_
#define DALI_CMO_CMO_IMAGE_CHECK_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace dali_cmo {

/** An allocator that leaves new elements uninitialised (file bytes overwrite them anyway). */
template <typename T>
struct UninitialisedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind { using other = UninitialisedAllocator<U>; };
  template <typename U>
  void construct(U *p) noexcept { ::new (static_cast<void *>(p)) U; }
  template <typename U, typename... Args>
  void construct(U *p, Args &&...args) { ::new (static_cast<void *>(p)) U(std::forward<Args>(args)...); }
};

/** Encoded file bytes. */
using Bytes = std::vector<uint8_t, UninitialisedAllocator<uint8_t>>;

/** The image format by magic number ("jpeg", "png", "gif", ..., "heif"), or "" if unknown. */
std::string SniffFormat(const uint8_t *data, size_t size);

/** What is wrong with the encoded image, or nothing if it looks fine. */
std::optional<std::string> QuickCheck(const uint8_t *data, size_t size);

/**
 * Reads a whole file into `bytes` (resized to the file's size). Returns the problem in
 * dali_cmo's words ("missing (file not found)", "unreadable (<strerror>)") or nothing.
 */
std::optional<std::string> ReadWholeFile(const std::string &path, Bytes &bytes);

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_IMAGE_CHECK_H_
