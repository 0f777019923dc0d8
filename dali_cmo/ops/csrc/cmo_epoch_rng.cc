#include "cmo_epoch_rng.h"

#include <cstring>

// NumPy's distributions library (numpy/random/lib/libnpyrandom.a, declared in
// numpy/random/distributions.h, which needs Python.h; only these two functions are used).
extern "C" {
void random_standard_exponential_fill(bitgen_t *bitgen_state, intptr_t count, double *out);
uint64_t random_interval(bitgen_t *bitgen_state, uint64_t max);
}

namespace dali_cmo {

namespace {

// ---------------------------------------------------------------- BLAKE2b (RFC 7693)

constexpr uint64_t kBlakeIv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};

constexpr uint8_t kBlakeSigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3}};

inline uint64_t RotateRight(uint64_t x, int bits) {
  return (x >> bits) | (x << (64 - bits));
}

inline void BlakeMix(uint64_t *v, int a, int b, int c, int d, uint64_t x, uint64_t y) {
  v[a] = v[a] + v[b] + x;
  v[d] = RotateRight(v[d] ^ v[a], 32);
  v[c] = v[c] + v[d];
  v[b] = RotateRight(v[b] ^ v[c], 24);
  v[a] = v[a] + v[b] + y;
  v[d] = RotateRight(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = RotateRight(v[b] ^ v[c], 63);
}

/** Compression function F of one 128-byte block; `bytes` counts the message so far. */
void BlakeCompress(uint64_t *h, const uint8_t *block, uint64_t bytes, bool last) {
  uint64_t m[16], v[16];
  for (int i = 0; i < 16; i++) {
    m[i] = 0;
    for (int k = 0; k < 8; k++) m[i] |= uint64_t(block[8 * i + k]) << (8 * k);
  }
  for (int i = 0; i < 8; i++) {
    v[i] = h[i];
    v[i + 8] = kBlakeIv[i];
  }
  v[12] ^= bytes;  // the high word of the 128-bit counter stays 0 for short messages
  if (last) v[14] = ~v[14];
  for (const auto &s : kBlakeSigma) {
    BlakeMix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
    BlakeMix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
    BlakeMix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
    BlakeMix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
    BlakeMix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
    BlakeMix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
    BlakeMix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
    BlakeMix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

// ---------------------------------------------------------------- NumPy's SeedSequence

constexpr uint32_t kInitA = 0x43b0d7e5, kMultA = 0x931e8875;
constexpr uint32_t kInitB = 0x8b51f9dd, kMultB = 0x58f38ded;
constexpr uint32_t kMixMultL = 0xca01f9dd, kMixMultR = 0x4973f715;
constexpr int kPoolSize = 4;

inline uint32_t HashMix(uint32_t value, uint32_t &hash_const) {
  value ^= hash_const;
  hash_const *= kMultA;
  value *= hash_const;
  return value ^ (value >> 16);
}

inline uint32_t Mix(uint32_t x, uint32_t y) {
  uint32_t result = kMixMultL * x - kMixMultR * y;
  return result ^ (result >> 16);
}

/** SeedSequence(entropy).pool for a non-negative integer entropy of up to 128 bits. */
std::array<uint32_t, kPoolSize> SeedPool(const std::array<uint8_t, 16> &entropy) {
  // the integer's 32-bit words, lowest first, without high zero words ([0] for zero)
  std::vector<uint32_t> words;
  for (int i = 0; i < 4; i++) {
    uint32_t w = 0;
    for (int k = 0; k < 4; k++) w |= uint32_t(entropy[4 * i + k]) << (8 * k);
    words.push_back(w);
  }
  while (words.size() > 1 && words.back() == 0) words.pop_back();

  std::array<uint32_t, kPoolSize> pool{};
  uint32_t hash_const = kInitA;
  for (int i = 0; i < kPoolSize; i++)
    pool[i] = HashMix(i < static_cast<int>(words.size()) ? words[i] : 0, hash_const);
  for (int src = 0; src < kPoolSize; src++)
    for (int dst = 0; dst < kPoolSize; dst++)
      if (src != dst) pool[dst] = Mix(pool[dst], HashMix(pool[src], hash_const));
  for (size_t src = kPoolSize; src < words.size(); src++)
    for (int dst = 0; dst < kPoolSize; dst++)
      pool[dst] = Mix(pool[dst], HashMix(words[src], hash_const));
  return pool;
}

/** SeedSequence.generate_state(4, np.uint64) as 128-bit (seed, increment) for PCG64. */
void GenerateState(const std::array<uint32_t, kPoolSize> &pool, unsigned __int128 &seed,
                   unsigned __int128 &increment) {
  uint32_t words[8];
  uint32_t hash_const = kInitB;
  for (int i = 0; i < 8; i++) {
    uint32_t value = pool[i % kPoolSize] ^ hash_const;
    hash_const *= kMultB;
    value *= hash_const;
    words[i] = value ^ (value >> 16);
  }
  uint64_t u64[4];
  for (int i = 0; i < 4; i++) u64[i] = uint64_t(words[2 * i]) | (uint64_t(words[2 * i + 1]) << 32);
  seed = (static_cast<unsigned __int128>(u64[0]) << 64) | u64[1];
  increment = (static_cast<unsigned __int128>(u64[2]) << 64) | u64[3];
}

// PCG64's 128-bit LCG multiplier
const unsigned __int128 kPcgMultiplier =
    (static_cast<unsigned __int128>(2549297995355413924ULL) << 64) | 4865540595714422341ULL;

}  // namespace

std::array<uint8_t, 16> Blake2b128(const std::string &message) {
  uint64_t h[8];
  std::memcpy(h, kBlakeIv, sizeof(h));
  h[0] ^= 0x01010000ULL ^ 16;  // no key, 16-byte digest
  const auto *data = reinterpret_cast<const uint8_t *>(message.data());
  size_t n = message.size(), offset = 0;
  uint8_t block[128];
  for (; n - offset > 128; offset += 128) {  // every full block but the last
    std::memcpy(block, data + offset, 128);
    BlakeCompress(h, block, offset + 128, false);
  }
  std::memset(block, 0, sizeof(block));  // the last block, zero-padded (empty message: zeros)
  std::memcpy(block, data + offset, n - offset);
  BlakeCompress(h, block, n, true);
  std::array<uint8_t, 16> digest{};
  for (int i = 0; i < 16; i++) digest[i] = static_cast<uint8_t>(h[i / 8] >> (8 * (i % 8)));
  return digest;
}

bool IsPlainStreamName(const std::string &stream) {
  for (char c : stream)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

std::string EpochKey(int64_t seed, int64_t epoch, const std::string &stream) {
  return "[" + std::to_string(seed) + ", " + std::to_string(epoch) + ", \"" + stream + "\"]";
}

EpochRng::EpochRng(const std::array<uint8_t, 16> &entropy) {
  unsigned __int128 seed, increment;
  GenerateState(SeedPool(entropy), seed, increment);
  // pcg_setseq_128_srandom_r
  state_ = 0;
  increment_ = (increment << 1) | 1u;
  NextUint64();
  state_ += seed;
  NextUint64();
}

EpochRng EpochRng::ForEpoch(int64_t seed, int64_t epoch, const std::string &stream) {
  return EpochRng(Blake2b128(EpochKey(seed, epoch, stream)));
}

uint64_t EpochRng::NextUint64() {
  state_ = state_ * kPcgMultiplier + increment_;
  uint64_t high = static_cast<uint64_t>(state_ >> 64), low = static_cast<uint64_t>(state_);
  unsigned rotation = static_cast<unsigned>(state_ >> 122);
  uint64_t x = high ^ low;
  return (x >> rotation) | (x << ((-rotation) & 63));
}

uint32_t EpochRng::NextUint32() {
  if (has_uint32_) {
    has_uint32_ = false;
    return uint32_;
  }
  uint64_t next = NextUint64();
  has_uint32_ = true;
  uint32_ = static_cast<uint32_t>(next >> 32);
  return static_cast<uint32_t>(next);
}

double EpochRng::Uniform() {
  return (NextUint64() >> 11) * (1.0 / 9007199254740992.0);
}

bitgen_t EpochRng::Bitgen() {
  bitgen_t bitgen{};
  bitgen.state = this;
  bitgen.next_uint64 = [](void *self) { return static_cast<EpochRng *>(self)->NextUint64(); };
  bitgen.next_uint32 = [](void *self) { return static_cast<EpochRng *>(self)->NextUint32(); };
  bitgen.next_double = [](void *self) { return static_cast<EpochRng *>(self)->Uniform(); };
  bitgen.next_raw = bitgen.next_uint64;
  return bitgen;
}

void EpochRng::StandardExponential(int64_t n, double *out) {
  bitgen_t bitgen = Bitgen();
  random_standard_exponential_fill(&bitgen, n, out);
}

void EpochRng::Shuffle(int64_t *data, int64_t n) {
  bitgen_t bitgen = Bitgen();
  for (int64_t i = n - 1; i >= 1; i--) {
    auto j = static_cast<int64_t>(random_interval(&bitgen, static_cast<uint64_t>(i)));
    std::swap(data[i], data[j]);
  }
}

std::vector<int64_t> EpochRng::Permutation(int64_t n) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; i++) order[i] = i;
  Shuffle(order.data(), n);
  return order;
}

}  // namespace dali_cmo
