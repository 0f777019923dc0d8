// Reading encoded image files for the reader, and dali_cmo's cheap bad-image check on them.
//
// The check has the same rules and messages as dali_cmo.data.integrity.quick_check (tests compare the two on the
// same files): empty files, formats DALI's decoders cannot read (unknown magic number, GIF,
// HEIF), JPEGs without the end-of-image marker FFD9 in their last 4096 bytes (or, for small
// files, without a start-of-scan marker before it) and PNGs without an IEND chunk in their last
// 1024 bytes.
#ifndef DALI_CMO_CMO_FILES_H_
#define DALI_CMO_CMO_FILES_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace dali_cmo {

/** The image format by magic number ("jpeg", "png", "gif", ..., "heif"), or "" if unknown. */
std::string SniffFormat(const uint8_t *data, size_t size);

/** What is wrong with the encoded image, or nothing if it looks fine. */
std::optional<std::string> QuickCheck(const uint8_t *data, size_t size);

/**
 * The bytes of one file: a read-only memory mapping (one copy less than reading, as
 * fn.readers.file does) or, without mapping, a copy read into a reusable buffer.
 */
class FileContent {
 public:
  FileContent() = default;
  FileContent(const FileContent &) = delete;
  FileContent &operator=(const FileContent &) = delete;
  ~FileContent() { Release(); }

  /**
   * Opens `path` and maps (`map`) or reads it whole. Returns the problem in dali_cmo's words
   * ("missing (file not found)", "unreadable (<strerror>)") or nothing.
   */
  std::optional<std::string> Load(const std::string &path, bool map);

  /** Forgets the content (unmaps it; a read buffer keeps its capacity for the next file). */
  void Release();

  const uint8_t *data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void *mapping_ = nullptr;
  size_t mapped_size_ = 0;
  std::vector<uint8_t> buffer_;
  const uint8_t *data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_FILES_H_
