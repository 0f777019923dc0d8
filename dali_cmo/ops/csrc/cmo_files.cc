#include "cmo_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace dali_cmo {

namespace {

constexpr size_t kJpegTail = 4096;  // integrity.JPEG_TAIL
constexpr size_t kPngTail = 1024;   // integrity.PNG_TAIL

std::string_view View(const uint8_t *data, size_t size) {
  return {reinterpret_cast<const char *>(data), size};
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool IsAsciiSpace(char c) {  // bytes.isspace()
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\x0b' || c == '\x0c';
}

std::string Upper(std::string text) {
  for (char &c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return text;
}

/** The first bytes as Python's bytes.hex(' '): "ff d8 00". */
std::string HexHead(const uint8_t *data, size_t size) {
  std::string out;
  char byte[4];
  for (size_t i = 0; i < std::min<size_t>(size, 8); i++) {
    std::snprintf(byte, sizeof(byte), i ? " %02x" : "%02x", data[i]);
    out += byte;
  }
  return out;
}

bool DaliDecodes(const std::string &format) {  // integrity.DALI_FORMATS
  for (const char *f : {"jpeg", "png", "bmp", "tiff", "webp", "jp2", "j2k", "pnm"})
    if (format == f) return true;
  return false;
}

}  // namespace

std::string SniffFormat(const uint8_t *data, size_t size) {
  std::string_view head = View(data, std::min<size_t>(size, 16));
  using namespace std::string_view_literals;
  if (StartsWith(head, "\xff\xd8\xff"sv)) return "jpeg";
  if (StartsWith(head, "\x89PNG\r\n\x1a\n"sv)) return "png";
  if (StartsWith(head, "GIF87a"sv) || StartsWith(head, "GIF89a"sv)) return "gif";
  if (StartsWith(head, "BM"sv)) return "bmp";
  for (auto tiff : {"II*\0"sv, "MM\0*"sv, "II+\0"sv, "MM\0+"sv})
    if (StartsWith(head, tiff)) return "tiff";
  if (StartsWith(head, "RIFF"sv) && head.substr(8, 4) == "WEBP"sv) return "webp";
  if (StartsWith(head, "\0\0\0\x0cjP  \r\n\x87\n"sv)) return "jp2";
  if (StartsWith(head, "\xff\x4f\xff\x51"sv)) return "j2k";
  if (head.size() >= 2 && head[0] == 'P' && head[1] >= '1' && head[1] <= '6' &&
      (head.size() < 3 || IsAsciiSpace(head[2])))
    return "pnm";
  if (head.size() > 4) {
    std::string_view brand = head.substr(4, 8);
    for (auto heif : {"ftypheic"sv, "ftypheix"sv, "ftypmif1"sv, "ftypavif"sv})
      if (brand == heif) return "heif";
  }
  return "";
}

std::optional<std::string> QuickCheck(const uint8_t *data, size_t size) {
  if (size == 0) return "empty file (0 bytes)";
  std::string format = SniffFormat(data, size);
  if (format.empty()) return "unknown image format (first bytes " + HexHead(data, size) + ")";
  if (format == "gif") return "GIF data (DALI cannot decode GIF)";
  if (!DaliDecodes(format))
    return Upper(format) + " data (DALI cannot decode " + Upper(format) + ")";
  std::string_view bytes = View(data, size);
  if (format == "jpeg") {
    size_t tail_start = size > kJpegTail ? size - kJpegTail : 0;
    std::string_view tail = bytes.substr(tail_start);
    size_t eoi = tail.rfind("\xff\xd9");
    if (eoi == std::string_view::npos)
      return "truncated JPEG (no end-of-image marker FFD9 in the last " +
             std::to_string(kJpegTail) + " bytes)";
    if (tail_start == 0) {  // small file: the marker must come after the start of scan
      size_t sos = tail.find("\xff\xda");
      if (sos == std::string_view::npos) return "truncated JPEG (no start-of-scan marker)";
      if (eoi < sos) return "truncated JPEG (end-of-image marker before the image data ends)";
    }
  } else if (format == "png") {
    size_t tail_start = size > kPngTail ? size - kPngTail : 0;
    if (bytes.substr(tail_start).rfind("IEND") == std::string_view::npos)
      return "truncated PNG (no IEND chunk)";
  }
  return std::nullopt;
}

void FileContent::Release() {
  if (mapping_) ::munmap(mapping_, mapped_size_);
  mapping_ = nullptr;
  mapped_size_ = 0;
  data_ = nullptr;
  size_ = 0;
}

std::optional<std::string> FileContent::Load(const std::string &path, bool map) {
  Release();
  auto unreadable = [](int error) {
    return "unreadable (" + std::string(std::strerror(error)) + ")";
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? std::string("missing (file not found)") : unreadable(errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat info;
  if (::fstat(fd, &info) != 0) return unreadable(errno);
  if (S_ISDIR(info.st_mode)) return unreadable(EISDIR);
  const size_t size = static_cast<size_t>(info.st_size);
  if (size == 0) return std::nullopt;  // empty: the check says so
  if (map) {
    void *mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (mapping != MAP_FAILED) {
      mapping_ = mapping;
      mapped_size_ = size;
      data_ = static_cast<const uint8_t *>(mapping);
      size_ = size;
      return std::nullopt;
    }  // not mappable (a pipe, a special file system): read it instead
  }
  if (buffer_.size() < size) buffer_.resize(size);
  size_t done = 0;
  while (done < size) {  // the size fstat saw (a file shrinking meanwhile ends early)
    ssize_t got = ::read(fd, buffer_.data() + done, size - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return unreadable(errno);
    if (got == 0) break;
    done += static_cast<size_t>(got);
  }
  data_ = buffer_.data();
  size_ = done;
  return std::nullopt;
}

}  // namespace dali_cmo
