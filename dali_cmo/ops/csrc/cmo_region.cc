// cmo_region: schema and CPU implementation.
#include "cmo_region.h"

#include <algorithm>
#include <vector>

namespace dali_cmo {

CmoRegion::CmoRegion(const dali::OpSpec &spec)
    : StatelessOperator(spec), size_(spec.GetArgument<int>("size")) {
  DALI_ENFORCE(size_ > 0, dali::make_string("cmo_region: argument `size` must be > 0; got ",
                                            size_));
}

bool CmoRegion::SetupImpl(std::vector<dali::OutputDesc> &output_desc,
                          const dali::Workspace &ws) {
  int n = ws.GetInputBatchSize(0);
  for (int i = 0; i < 3; i++)
    DALI_ENFORCE(ws.Input<dali::CPUBackend>(i).type() == DALI_INT32, dali::make_string(
        "cmo_region: input ", i, " must be int32 (crop anchor and shape from "
        "random_crop_generator, box from cmo_box)"));
  GetPerSampleArgument(mirror_, "foreground_mirror", ws, n);
  auto pair = dali::TensorListShape<>(dali::uniform_list_shape(n, dali::TensorShape<1>{2}));
  output_desc.assign(3, {pair, DALI_FLOAT});
  return true;
}

void CmoRegion::RunImpl(dali::Workspace &ws) {
  const auto &anchor = ws.Input<dali::CPUBackend>(0), &window = ws.Input<dali::CPUBackend>(1);
  const auto &boxes = ws.Input<dali::CPUBackend>(2);
  const float S = static_cast<float>(size_);
  for (int i = 0; i < boxes.num_samples(); i++) {
    const int32_t *a = anchor.tensor<int32_t>(i), *w = window.tensor<int32_t>(i);
    const int32_t *b = boxes.tensor<int32_t>(i);  // y1, x1, y2, x2
    // Columns of the box, mirrored when the foreground is flipped, map linearly into the crop.
    float left = mirror_[i] ? S - b[3] : b[1];
    float scale_y = w[0] / S, scale_x = w[1] / S;
    float *start = ws.Output<dali::CPUBackend>(0).mutable_tensor<float>(i);
    float *extent = ws.Output<dali::CPUBackend>(1).mutable_tensor<float>(i);
    float *box_size = ws.Output<dali::CPUBackend>(2).mutable_tensor<float>(i);
    start[0] = a[0] + b[0] * scale_y;
    start[1] = a[1] + left * scale_x;
    extent[0] = std::max((b[2] - b[0]) * scale_y, 1.0f);  // at least one source pixel
    extent[1] = std::max((b[3] - b[1]) * scale_x, 1.0f);
    box_size[0] = static_cast<float>(b[2] - b[0]);
    box_size[1] = static_cast<float>(b[3] - b[1]);
  }
}

}  // namespace dali_cmo

DALI_REGISTER_OPERATOR(CmoRegion, ::dali_cmo::CmoRegion, ::dali::CPU);

DALI_SCHEMA(CmoRegion)
    .DocStr(R"(The source window to decode for a region-only foreground (CMO pipelines).

A foreground's random-resized-crop maps its crop window (``anchor = (ay, ax)``,
``shape = (h, w)`` in source pixels) linearly onto the ``size x size`` training image; only
the part under the pasted box ``[y1, x1, y2, x2]`` (from ``cmo_box``) is ever seen. With
``s = size``, that part is

    start  = (ay + y1 * h / s,  ax + x1' * w / s)
    extent = (max((y2 - y1) * h / s, 1),  max((x2 - x1) * w / s, 1))

where ``x1' = x1``, or ``s - x2`` with ``foreground_mirror`` (the box's columns of the flipped
crop come from the mirrored columns of the unflipped one; ``cmo_paste`` flips the region within
the box). The third output is the box's ``(height, width)``.

Feed ``start`` and ``extent`` to ``decoders.image_slice(..., normalized_anchor=False,
normalized_shape=False)`` and the decoded window, resized to the box, to ``cmo_paste(...,
box=box, foreground_mirror=...)``. Outputs are float32 pairs in ``(y, x)`` order.)")
    .NumInput(3)
    .InputDox(0, "anchor", "1D TensorList of int32",
              "Crop window start ``(y, x)`` in source pixels (``random_crop_generator``).")
    .InputDox(1, "shape", "1D TensorList of int32",
              "Crop window shape ``(h, w)`` in source pixels (``random_crop_generator``).")
    .InputDox(2, "box", "1D TensorList of int32",
              "Box ``[y1, x1, y2, x2]`` in the ``size x size`` output (``cmo_box``).")
    .NumOutput(3)
    .AddArg("size", "Side of the square training image the boxes were drawn for.", DALI_INT32)
    .AddOptionalArg("foreground_mirror", "Whether the foreground is flipped (per sample).", 0,
                    true);
