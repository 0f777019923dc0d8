// The cmo_paste CUDA kernel: a thin wrapper of PasteKernelBody (paste_pixel.h) and its launch,
// shared by the operator (cmo_paste.cu) and the standalone kernel check (nvcc only, no DALI).
#ifndef DALI_CMO_PASTE_KERNEL_CUH_
#define DALI_CMO_PASTE_KERNEL_CUH_

#include <cuda_runtime.h>

#include <cstdint>

#include "paste_pixel.h"

namespace dali_cmo {

/** At least 4 blocks of 256 threads per SM: ptxas fits the kernel in 58 registers without
 *  spilling (81 unbounded, for the resampling path's sake), half the SM's threads resident. */
template <typename Out, bool kCHW>
__global__ void __launch_bounds__(kBlockSize, 4) PasteKernel(
    const PasteSampleDesc *__restrict__ descs) {
  PasteKernelBody<Out, kCHW>(descs, ThreadPosition{static_cast<int>(blockIdx.x),
                                                   static_cast<int>(blockIdx.y),
                                                   static_cast<int>(threadIdx.x),
                                                   static_cast<int>(blockDim.x),
                                                   static_cast<int>(gridDim.x)});
}

/** One launch for the batch: blockIdx.y is the sample, the blocks along x share its pixels. */
template <typename Out, bool kCHW>
void LaunchPaste(const PasteSampleDesc *gpu_descs, int num_samples, int64_t max_pixels,
                 cudaStream_t stream) {
  dim3 grid(PasteBlocksPerSample(max_pixels), num_samples);
  PasteKernel<Out, kCHW><<<grid, kBlockSize, 0, stream>>>(gpu_descs);
}

}  // namespace dali_cmo

#endif  // DALI_CMO_PASTE_KERNEL_CUH_
