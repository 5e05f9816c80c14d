#!/usr/bin/env bash
# Train (and evaluate) the shipped latent-diffusion models weights/ldm/mnist-<d>-cpu, two at a time,
# one thread each, a log per run in /tmp/ldm-<d>.log. Usage: scripts/train_ldm_all.sh [digits...]
# (default 0 1 2 3 4 5 6 7 8 9). Run from the repository root, e.g. with nohup in the background.
# The recipe of the shipped digits: latents rescaled to std 0.5, so that the paper's t = 200 lets
# anomalies drift while most normals keep their class (measured per digit in its card's sweep);
# negatives sampled from pure noise by DDIM (cheaper than the paper's DDPM; labelled in the card).
# About 30 min per digit on one AVX2 thread (training ~25, the card's evaluation and sweep ~5).
set -u
PY=${PY:-.venv/bin/python}
PARALLEL=${PARALLEL:-2}
digits=("$@")
[ ${#digits[@]} -eq 0 ] && digits=(0 1 2 3 4 5 6 7 8 9)
for d in "${digits[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
  echo "$(date -u +%H:%M:%S) start digit $d"
  (rm -rf "weights/ldm/mnist-$d-cpu"
   OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m xad train ldm --setting "mnist-anomalous:$d" \
     --vq-steps 800 --unet-steps 6000 --latent-scaling std --latent-target-std 0.5 --t 200 \
     --clf-pool 1000 --negatives 2000 --negative-sampler ddim --eval-limit 200 --sweep-limit 100 \
     --threads 1 --out "weights/ldm/mnist-$d-cpu" > "/tmp/ldm-$d.log" 2>&1
   echo "$(date -u +%H:%M:%S) digit $d finished with status $?") &
  sleep 2
done
wait
echo "$(date -u +%H:%M:%S) all done"
