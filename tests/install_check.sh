#!/usr/bin/env bash
# The wheel works where a user installs it: build it (platform-tagged, requiring the DALI it was
# built against), install it, not editable, into a throwaway venv that already has DALI and torch
# (the test venv's, seen through a .pth file, so nothing big is installed again: pip must install
# dali-cmo alone), then load the plugin and run a pipeline with fn.readers.weighted_file and
# fn.cmo_paste from outside the checkout.
# Usage: tests/install_check.sh [PYTHON]   (the test venv's; default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute, and still the venv's (no realpath)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No build isolation: the test venv has the build requirements and the DALI to build against, and
# a library already built there from the same sources is reused.
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$tmp/dist" .
wheel=$(ls "$tmp"/dist/dali_cmo-*.whl)
echo "wheel: $(basename "$wheel")"
case "$wheel" in *-none-any.whl) echo "error: the wheel is not platform-tagged" >&2; exit 1 ;; esac
unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist: nvidia-dali'

"$PY" -m venv --without-pip "$tmp/venv"
site=$("$tmp/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
"$PY" -c 'import sysconfig; print(sysconfig.get_path("purelib"))' > "$site/test-venv.pth"
"$PY" -m pip --python "$tmp/venv/bin/python" install -q "$wheel"
extra=$(ls "$site" | grep -v -x -E 'dali_cmo|dali_cmo-.*\.dist-info|pipelines|test-venv\.pth' || true)
if [ -n "$extra" ]; then echo "error: installing the wheel also installed: $extra" >&2; exit 1; fi

cd "$tmp"
"$tmp/venv/bin/python" - <<'EOF'
import numpy as np
from PIL import Image

import dali_cmo
from nvidia.dali import fn, pipeline_def, types

assert dali_cmo.__file__.startswith(__import__("sysconfig").get_path("purelib")), dali_cmo.__file__
print("loaded", dali_cmo.load_plugin())
for i in range(4):
    Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(f"{i}.jpg")

@pipeline_def(batch_size=4, num_threads=1, device_id=None, seed=1)
def paste():
    encoded, label, _ = fn.readers.weighted_file(
        file_root=".", files=[f"{i}.jpg" for i in range(4)], labels=[0, 0, 1, 1],
        sampling="weighted", weights=[1.0, 1.0, 2.0, 2.0], seed=1)
    images = fn.decoders.image(encoded, output_type=types.RGB)
    pasted, lam = fn.cmo_paste(images, images, probability=1.0)
    return pasted, lam, label

pipe = paste()
pipe.build()
pasted, lam, label = pipe.run()
assert pasted.as_tensor().shape() == [4, 16, 16, 3], pasted.as_tensor().shape()
print("pipeline ran: pasted", pasted.as_tensor().shape(), "lam", np.asarray(lam.as_tensor()).ravel())
EOF
echo "install check: the wheel installs alone and its plugin runs"
