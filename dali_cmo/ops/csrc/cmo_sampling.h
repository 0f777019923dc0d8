// The epoch orders of dali_cmo's two samplers, drawn exactly as dali_cmo.data.sampling does:
//
// * P (PermutationSampler): Generator.permutation(N) of the epoch's generator;
// * Q (WeightedSampler): N draws with replacement, p_i = w_i / sum(w): N + 1 standard
//   exponentials -> normalised partial sums (N sorted uniforms scaled to the CDF's end) ->
//   inverse CDF (numpy.searchsorted(cdf, u, side="right")) -> Generator.shuffle.
//
// The sum is NumPy's pairwise summation and the CDF its sequential cumsum, so the same float64
// weights give the same draws as the Python sampler, index for index.
#ifndef DALI_CMO_CMO_SAMPLING_H_
#define DALI_CMO_CMO_SAMPLING_H_

#include <cstdint>
#include <string>
#include <vector>

namespace dali_cmo {

/** numpy.add.reduce of a contiguous float64 array: pairwise summation in blocks of 8. */
double PairwiseSum(const double *values, int64_t n);

/** P: the permutation of 0..n-1 for (seed, epoch, stream). */
std::vector<int64_t> PermutationOrder(int64_t n, int64_t seed, int64_t epoch,
                                      const std::string &stream);

/** Q: weighted draws with replacement over the samples. */
class WeightedDraws {
 public:
  /** Throws std::invalid_argument unless the weights are finite, >= 0, with a positive sum. */
  explicit WeightedDraws(const std::vector<double> &weights);

  /** The N draws of (seed, epoch, stream), in visiting order. */
  std::vector<int64_t> Draw(int64_t seed, int64_t epoch, const std::string &stream) const;

  int64_t size() const { return static_cast<int64_t>(cdf_.size()); }

 private:
  std::vector<double> cdf_;   // cumulative sum of w / sum(w)
  int64_t last_positive_ = 0;  // a draw rounded past the CDF's end maps here
};

}  // namespace dali_cmo

#endif  // DALI_CMO_CMO_SAMPLING_H_
