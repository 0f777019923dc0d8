// cmo_cache: a process-wide store of decoded foregrounds, so that a tail image that CMO pastes
// again and again is decoded once. Two operators share a store by name: cmo_cache_lookup says,
// per pasted foreground, whether its image is held (a hit), should be decoded whole and stored
// (an admitted miss) or decoded as before (a miss); cmo_cache_window cuts the pasted window from
// the held image, storing a whole decoded image first when given one.
//
// Exactness rests on DALI's decoders: a region decode equals the full decode cropped, and
// cmo_cache_window rounds the window as decoders.image_slice does. Entries are never evicted
// (admission is decided once, by the caller), so a hit stays a hit; the store is not pipeline
// state (a restored pipeline refills it), hence stateless operators.
#ifndef DALI_CMO_CMO_CACHE_H_
#define DALI_CMO_CMO_CACHE_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "dali/pipeline/operator/checkpointing/stateless_operator.h"

namespace dali_cmo {

/** What cmo_cache_lookup says of a foreground. */
enum CacheState : int32_t { kCacheMiss = 0, kCacheHit = 1, kCacheAdmit = 2 };

/** One decoded image, HWC uint8, immutable once stored. */
struct CachedImage {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;
};

/** Counters of a store, as dali_cmo_cache_stats reports them. */
struct CacheStats {
  int64_t hits = 0, misses = 0, stored = 0, bytes = 0;
};

/**
 * The images of one cache name. Admission is a per-dataset-index mask (1 = may be stored) and a
 * byte budget that is never exceeded: bytes are reserved when a miss is admitted.
 */
class ForegroundStore {
 public:
  /** The store named `name`, created on first use; it lives while an operator holds it. */
  static std::shared_ptr<ForegroundStore> Get(const std::string &name);
  /** The store named `name` if it exists. */
  static std::shared_ptr<ForegroundStore> Find(const std::string &name);

  /** Sets the admission mask (read from `admission_file`) and the budget; once per store. */
  void Configure(const std::string &admission_file, int64_t budget_bytes);

  /** Hit, admitted miss (bytes reserved) or miss, for an image of `bytes` decoded bytes. */
  CacheState Lookup(int64_t index, int64_t bytes);
  /** The held image of `index`, or null. */
  std::shared_ptr<const CachedImage> Image(int64_t index) const;
  /** Holds `image` for `index` (the first image stored for an index is kept), unless it was
   *  not admitted by Lookup and does not fit in the budget; returns the image to cut from. */
  std::shared_ptr<const CachedImage> Store(int64_t index, CachedImage image);

  CacheStats Stats() const;

 private:
  mutable std::mutex mutex_;
  bool configured_ = false;
  std::vector<uint8_t> admitted_;
  int64_t budget_ = 0, reserved_ = 0;
  std::unordered_map<int64_t, int64_t> pending_;  // admitted, not yet stored: reserved bytes
  std::unordered_map<int64_t, std::shared_ptr<const CachedImage>> images_;
  CacheStats stats_;
};

/**
 * Inputs: the dataset index (int64 scalar) and the encoded image's shape (peek_image_shape).
 * Output: the CacheState per sample (int32 scalar).
 */
class CmoCacheLookup : public dali::StatelessOperator<dali::CPUBackend> {
 public:
  explicit CmoCacheLookup(const dali::OpSpec &spec);

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override;
  void RunImpl(dali::Workspace &ws) override;

 private:
  std::shared_ptr<ForegroundStore> store_;
};

/**
 * Inputs: the dataset index, the window's start and extent (cmo_region's float pairs) and,
 * optionally, the whole decoded image to store first. Output: the window, HWC uint8.
 */
class CmoCacheWindow : public dali::StatelessOperator<dali::CPUBackend> {
 public:
  explicit CmoCacheWindow(const dali::OpSpec &spec);

 protected:
  bool SetupImpl(std::vector<dali::OutputDesc> &output_desc, const dali::Workspace &ws) override;
  void RunImpl(dali::Workspace &ws) override;

 private:
  struct Window {
    std::shared_ptr<const CachedImage> image;
    int64_t y, x, h, w;
  };
  std::shared_ptr<ForegroundStore> store_;
  std::vector<Window> windows_;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_CACHE_H_
