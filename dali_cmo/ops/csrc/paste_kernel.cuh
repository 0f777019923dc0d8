// The cmo_paste CUDA kernel: a thin wrapper of PasteKernelBody (paste_pixel.h) and its launch,
// shared by the operator (cmo_paste.cu) and the standalone kernel check (nvcc only, no DALI).
#ifndef DALI_CMO_PASTE_KERNEL_CUH_
#define DALI_CMO_PASTE_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "paste_pixel.h"

namespace dali_cmo {

/** At least 4 blocks of 256 threads per SM, half the SM's threads resident: at most 64
 *  registers a thread, which ptxas meets for sm_90 without spilling. */
template <typename Out, bool kCHW>
__global__ void __launch_bounds__(kBlockSize, 4) PasteKernel(
    const PasteSampleDesc *__restrict__ descs) {
  PasteKernelBody<Out, kCHW>(descs, ThreadPosition{static_cast<int>(blockIdx.x),
                                                   static_cast<int>(blockIdx.y),
                                                   static_cast<int>(threadIdx.x),
                                                   static_cast<int>(blockDim.x),
                                                   static_cast<int>(gridDim.x)});
}

/** gridDim.y's limit: the most samples one launch can take. */
constexpr int kMaxSamplesPerLaunch = 65535;

/** One launch per kMaxSamplesPerLaunch samples of the batch (usually one): blockIdx.y is the
 *  sample, the blocks along x share its pixels. */
template <typename Out, bool kCHW>
void LaunchPaste(const PasteSampleDesc *gpu_descs, int num_samples, int64_t max_pixels,
                 cudaStream_t stream) {
  const int blocks = PasteBlocksPerSample(max_pixels);
  for (int first = 0; first < num_samples; first += kMaxSamplesPerLaunch) {
    const int samples = num_samples - first < kMaxSamplesPerLaunch ? num_samples - first
                                                                   : kMaxSamplesPerLaunch;
    PasteKernel<Out, kCHW><<<dim3(blocks, samples), kBlockSize, 0, stream>>>(gpu_descs + first);
  }
}

}  // namespace dali_cmo

#endif  // DALI_CMO_PASTE_KERNEL_CUH_
