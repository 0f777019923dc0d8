#include "cmo_sampling.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "cmo_epoch_rng.h"

namespace dali_cmo {

double PairwiseSum(const double *values, int64_t n) {
  constexpr int64_t kBlock = 128;  // NumPy's PW_BLOCKSIZE
  if (n < 8) {
    double sum = -0.0;
    for (int64_t i = 0; i < n; i++) sum += values[i];
    return sum;
  }
  if (n <= kBlock) {
    double r[8];
    for (int k = 0; k < 8; k++) r[k] = values[k];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int k = 0; k < 8; k++) r[k] += values[i + k];
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) sum += values[i];
    return sum;
  }
  int64_t half = n / 2;
  half -= half % 8;
  return PairwiseSum(values, half) + PairwiseSum(values + half, n - half);
}

std::vector<int64_t> PermutationOrder(int64_t n, int64_t seed, int64_t epoch,
                                      const std::string &stream) {
  return EpochRng::ForEpoch(seed, epoch, stream).Permutation(n);
}

WeightedDraws::WeightedDraws(const std::vector<double> &weights) {
  bool valid = !weights.empty();
  for (double w : weights) valid = valid && std::isfinite(w) && w >= 0;
  double total = valid ? PairwiseSum(weights.data(), weights.size()) : 0.0;
  if (!valid || !(total > 0))
    throw std::invalid_argument(
        "weights must be a 1-D array of finite values >= 0 with a positive sum");
  cdf_.resize(weights.size());
  double running = 0.0;
  for (size_t i = 0; i < weights.size(); i++) {
    running += weights[i] / total;
    cdf_[i] = running;
    if (weights[i] > 0) last_positive_ = static_cast<int64_t>(i);
  }
}

std::vector<int64_t> WeightedDraws::Draw(int64_t seed, int64_t epoch,
                                         const std::string &stream) const {
  const int64_t n = size();
  EpochRng rng = EpochRng::ForEpoch(seed, epoch, stream);
  std::vector<double> partial(n + 1);
  rng.StandardExponential(n + 1, partial.data());
  for (int64_t i = 1; i <= n; i++) partial[i] += partial[i - 1];
  const double scale = cdf_[n - 1] / partial[n];
  std::vector<int64_t> drawn(n);
  int64_t j = 0;  // the uniforms come sorted: walk the CDF once
  for (int64_t i = 0; i < n; i++) {
    const double u = partial[i] * scale;
    while (j < n && cdf_[j] <= u) j++;
    drawn[i] = std::min(j, last_positive_);
  }
  rng.Shuffle(drawn.data(), n);
  return drawn;
}

}  // namespace dali_cmo
