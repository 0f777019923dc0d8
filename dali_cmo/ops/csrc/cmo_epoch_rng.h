// The per-epoch random stream of dali_cmo's samplers, bit for bit as in Python.
//
// dali_cmo.data.sampling.epoch_generator(seed, epoch, stream) seeds NumPy's default generator
// from a hash of (seed, epoch, stream):
//
//   key     = JSON text [seed, epoch, "stream"]              (json.dumps: ", " separators)
//   entropy = BLAKE2b-128(key), read as a little-endian integer
//   rng     = numpy.random.Generator(PCG64(SeedSequence(entropy)))
//
// EpochRng rebuilds that generator in C++: BLAKE2b (RFC 7693), NumPy's SeedSequence mixing and
// PCG64 (XSL-RR 128/64, O'Neill 2014) are written out here; the distributions (bounded integers
// for shuffles, the ziggurat exponential) come from NumPy's own C library `npyrandom`, which
// NumPy ships for extensions, so the C++ reader draws the very same numbers as the Python
// samplers for the same (seed, epoch, stream).
#ifndef DALI_CMO_CMO_EPOCH_RNG_H_
#define DALI_CMO_CMO_EPOCH_RNG_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "numpy/random/bitgen.h"

namespace dali_cmo {

/** BLAKE2b with a 16-byte digest and no key (RFC 7693), as Python's hashlib.blake2b(digest_size=16). */
std::array<uint8_t, 16> Blake2b128(const std::string &message);

/** The JSON text json.dumps([seed, epoch, stream]) for a stream name of printable ASCII. */
std::string EpochKey(int64_t seed, int64_t epoch, const std::string &stream);

/** Whether `stream` is printable ASCII without quotes or backslashes (JSON needs no escapes). */
bool IsPlainStreamName(const std::string &stream);

/**
 * numpy.random.Generator(PCG64(SeedSequence(entropy))) for a 128-bit entropy integer given as
 * 16 little-endian bytes, with the distributions the samplers use.
 */
class EpochRng {
 public:
  explicit EpochRng(const std::array<uint8_t, 16> &entropy);

  /** The generator of epoch `epoch` of stream `stream` under `seed` (epoch_generator in Python). */
  static EpochRng ForEpoch(int64_t seed, int64_t epoch, const std::string &stream);

  /** Generator.random(): a double in [0, 1) from the top 53 bits of one 64-bit draw. */
  double Uniform();

  /** Generator.standard_exponential(n) into `out` (NumPy's ziggurat). */
  void StandardExponential(int64_t n, double *out);

  /** Generator.shuffle(x) of a 1-D array: Fisher-Yates from the end, j = random_interval(i). */
  void Shuffle(int64_t *data, int64_t n);

  /** Generator.permutation(n): 0..n-1 shuffled. */
  std::vector<int64_t> Permutation(int64_t n);

  /** The raw 64-bit output of PCG64 (exposed for tests of the generator itself). */
  uint64_t NextUint64();

 private:
  uint32_t NextUint32();
  /** NumPy's view of this generator (valid while `this` lives). */
  bitgen_t Bitgen();

  unsigned __int128 state_ = 0;
  unsigned __int128 increment_ = 0;
  bool has_uint32_ = false;  // PCG64 hands out 64-bit draws in two 32-bit halves
  uint32_t uint32_ = 0;
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_EPOCH_RNG_H_
