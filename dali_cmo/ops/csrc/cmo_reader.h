// readers.weighted_file: a DALI file reader whose epochs are a fresh permutation (P) or N
// weighted draws with replacement (Q), as dali_cmo.data.sampling draws them.
//
// Built on DALI's reader framework (DataReader + Loader, like fn.readers.file): the loader runs
// in the reader's prefetch thread and only decides *which* samples come (index, label, coin);
// the operator reads, checks and copies the bytes in the pipeline's thread pool. Sharding,
// pad_last_batch, stick_to_shard, reader metadata and checkpoints are DALI's own.
#ifndef DALI_CMO_CMO_READER_H_
#define DALI_CMO_CMO_READER_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cmo_files.h"
#include "cmo_sampling.h"
#include "dali/operators/reader/loader/loader.h"
#include "dali/operators/reader/reader_op.h"

namespace dali_cmo {

/** What the loader hands the operator for one sample; the operator fills in the bytes. */
struct SampledFile {
  int64_t index = 0;   // the drawn dataset index
  int32_t label = 0;
  int64_t epoch = 0;   // the reader epoch (0-based) and the batch within it (position / batch)
  int64_t batch = 0;
  bool coin = true;    // heads, or true when the reader tosses no coins
  bool wanted = true;  // whether to read the bytes at all
  int64_t read_index = 0;  // the index actually read (a same-class replacement, or index)
  FileContent content;     // its bytes until they are copied to the output
};

/**
 * Paths (joined to `file_root` when asked for) and labels, from `files`/`labels` or a
 * `file_list`. The paths are kept back to back in one buffer: memory grows with their bytes,
 * not with a string object per sample.
 */
class FileList {
 public:
  /**
   * The list the spec names. Readers of one process that name the same `file_list` (same
   * root, size and modification time) share one copy, read once.
   */
  static std::shared_ptr<const FileList> FromSpec(const dali::OpSpec &spec);

  int64_t size() const { return static_cast<int64_t>(labels_.size()); }
  /** The path of sample `i`, joined to the root. */
  std::string path(int64_t i) const;
  int32_t label(int64_t i) const { return labels_[i]; }
  const std::vector<int32_t> &labels() const { return labels_; }

 private:
  void Add(const char *path, size_t length, int32_t label);
  void ReadList(const std::string &list);

  std::string root_;
  std::string bytes_;          // the paths as given, back to back
  std::vector<int64_t> ends_;  // path i is bytes_[ends_[i - 1], ends_[i])
  std::vector<int32_t> labels_;
};

/** The optional coin tossed for each batch (or sample) before anything is read. */
struct CoinSpec {
  bool enabled = false;
  double probability = 1.0;
  bool per_sample = false;
  int64_t first_epoch = 0, stop_epoch = 0;  // coins may show heads only in [first, stop)
  std::string stream;
  bool skip_tails = true;

  static CoinSpec FromSpec(const dali::OpSpec &spec);
};

class SampledFileLoader : public dali::Loader<dali::CPUBackend, SampledFile, true> {
 public:
  explicit SampledFileLoader(const dali::OpSpec &spec);

  void PrepareEmpty(SampledFile &) override {}
  void ReadSample(SampledFile &sample) override;
  void Skip() override;

  const FileList &files() { PrepareMetadata(); return *files_; }

 protected:
  dali::Index SizeImpl() override { return static_cast<dali::Index>(files_->size()); }
  void PrepareMetadataImpl() override;
  /** Starts epoch `next_epoch_`: its shard and its order. */
  void Reset(bool wrap_to_shard) override;
  void RestoreStateImpl(const dali::LoaderStateSnapshot &state) override;

 private:
  bool Coin(int64_t position);

  const dali::OpSpec spec_;
  std::shared_ptr<const FileList> files_;
  bool weighted_;
  std::string stream_;
  std::optional<WeightedDraws> draws_;
  CoinSpec coin_;

  std::vector<int64_t> order_;  // the epoch's global order
  int64_t epoch_ = 0, next_epoch_ = 0;
  int64_t shard_begin_ = 0, shard_size_ = 0, position_ = 0;
  int64_t coin_epoch_ = -1, coin_batch_ = -1;  // the batch coin_values_ belong to
  std::vector<double> coin_values_;
};

/**
 * Reads a sample's file and applies the bad-image policy: "error" fails naming the file;
 * "skip" reads the next valid file of the same class instead (dataset order, wrapping) and
 * reports each bad file once.
 */
class BadImagePolicy {
 public:
  BadImagePolicy(const dali::OpSpec &spec);

  /** Loads sample.content and sets sample.read_index (throws under "error"). */
  void Load(SampledFile &sample, const FileList &files);

 private:
  std::optional<std::string> ReadChecked(const std::string &path, FileContent &content);
  void Record(const std::string &path, const std::string &reason, int64_t index, int64_t epoch);
  const std::vector<int64_t> &Members(const FileList &files, int32_t label);

  bool skip_;
  bool check_;
  bool map_;  // memory-map files (DALI's dont_use_mmap=False) or read them
  std::string log_path_;
  std::mutex mutex_;
  std::unordered_map<std::string, std::string> bad_files_;  // path -> reason
  std::unordered_map<int32_t, std::vector<int64_t>> members_;  // label -> indices, sorted
};

class WeightedFileReader
    : public dali::DataReader<dali::CPUBackend, SampledFile, SampledFile, true> {
 public:
  explicit WeightedFileReader(const dali::OpSpec &spec);

  void RunImpl(dali::Workspace &ws) override;

 protected:
  USE_READER_OPERATOR_MEMBERS(dali::CPUBackend, SampledFile, SampledFile, true);

 private:
  SampledFileLoader *sampled_loader_ = nullptr;  // loader_, with its file list
  BadImagePolicy policy_;
  bool coin_output_;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_READER_H_
