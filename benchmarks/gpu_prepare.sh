#!/usr/bin/env bash
# Stage what benchmarks/gpu_check.sh needs on the offline GPU host into the git-ignored
# .gpu-carry/ folder of this checkout (../shared does not travel to the host):
#   .gpu-carry/unpack-dali.sh, .gpu-carry/pack-dali.sh     copies of ../shared/gpu/*.sh
#   .gpu-carry/data/imagenet-samples/                      the first N ImageNet JPEGs (by name)
#
#   usage: benchmarks/gpu_prepare.sh [N_IMAGES]      (default 200; 0 copies no images)
#   env:   GPU_PREPARE_MAX_MB   stop copying images before this many MiB (default 20)
#          DALI_CMO_SHARED      the shared folder (default: ../shared beside the repository)
#          DALI_CMO_SHARED_DATA its data folder (default: $DALI_CMO_SHARED/data)
#
# Run it on THIS machine before the transfers; it replaces .gpu-carry/ wholesale. It ends by
# printing the sizes that count against the 64 MiB a transfer may carry (the procedure: README,
# "Checking on a GPU"; the transfers: ../shared/gpu/README.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n_images=${1:-200}
max_mb=${GPU_PREPARE_MAX_MB:-20}
shared=${DALI_CMO_SHARED:-$repo/../shared}
data=${DALI_CMO_SHARED_DATA:-$shared/data}
carry=$repo/.gpu-carry

[[ $n_images =~ ^[0-9]+$ ]] || { echo "usage: $0 [N_IMAGES]" >&2; exit 2; }
for script in unpack-dali.sh pack-dali.sh; do
  [[ -f $shared/gpu/$script ]] || { echo "error: $shared/gpu/$script not found" >&2; exit 1; }
done
rm -rf "$carry"
mkdir -p "$carry"
cp "$shared/gpu/unpack-dali.sh" "$shared/gpu/pack-dali.sh" "$carry/"
chmod +x "$carry"/*.sh

copied=0 bytes=0
if (( n_images > 0 )); then
  src=$data/imagenet-samples
  if [[ -d $src ]]; then
    dst=$carry/data/imagenet-samples
    mkdir -p "$dst"
    limit=$(( max_mb * 1024 * 1024 ))
    while IFS= read -r -d '' file; do
      (( copied < n_images )) || break
      size=$(stat -c %s "$file")
      (( bytes + size <= limit )) || break
      cp "$file" "$dst/"
      copied=$(( copied + 1 )) bytes=$(( bytes + size ))
    done < <(find "$src" -maxdepth 1 -type f -print0 | sort -z)
    echo "copied $copied ImageNet samples ($(( bytes / 1024 )) KiB) into .gpu-carry/data/imagenet-samples"
  else
    echo "warning: $src not found; no images staged (benchmarks fall back to their defaults)" >&2
  fi
fi

# What a transfer carries: the checkout (tracked + untracked, not ignored) plus the carry paths.
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
checkout=$(cd "$repo" && git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null \
           | awk '{ s += $1 } END { print s + 0 }')
carry_bytes=$(du -sb "$carry" | cut -f1)
echo "checkout: $(mib "$checkout") MiB   .gpu-carry: $(mib "$carry_bytes") MiB"
if compgen -G "$repo/.dali-parts/dali.tar.xz.part*" > /dev/null; then
  last=$(ls "$repo"/.dali-parts/dali.tar.xz.part* | tail -1)
  last_bytes=$(stat -c %s "$last")
  sums=$(stat -c %s "$repo/.dali-parts/SHA256SUMS" 2>/dev/null || echo 0)
  total=$(( checkout + carry_bytes + last_bytes + sums ))
  echo "last transfer ($(basename "$last") + SHA256SUMS + .gpu-carry + checkout): $(mib "$total") MiB" \
       "$( (( total < 63 * 1048576 )) && echo '(fits in 64 MiB)' || echo '(too big: send .gpu-carry in a call of its own, or stage fewer images)')"
fi
