#!/usr/bin/env bash
# Train (and evaluate) the shipped latent-diffusion models weights/ldm/mnist-<d>-cpu, two at a time,
# one thread each, a log per run in /tmp/ldm-<d>.log. Usage: scripts/train_ldm_all.sh [--classes] [digits...]
# (default 0 1 2 3 4 5 6 7 8 9). Run from the repository root, e.g. with nohup in the background.
# The recipe of the shipped digits: latents rescaled to std 0.5, so that the paper's t = 200 lets
# anomalies drift while most normals keep their class (measured per digit in its card's sweep);
# negatives sampled from pure noise by DDIM (cheaper than the paper's DDPM; labelled in the card).
# About 30 min per digit on one AVX2 thread (training ~25, the card's evaluation and sweep ~5).
# --classes: the labelled extension weights/ldm/mnist-<d>-cpu-classes instead, the same-class classifier
# trained on class-labelled pairs on the VQ autoencoder and UNet of weights/ldm/mnist-<d>-cpu (which must
# exist); about 15 min per digit (pairs and classifier ~9, evaluation ~6); logs /tmp/ldm-<d>-classes.log.
set -u
PY=${PY:-.venv/bin/python}
PARALLEL=${PARALLEL:-2}
suffix=""
if [ "${1:-}" = "--classes" ]; then suffix="-classes"; shift; fi
digits=("$@")
[ ${#digits[@]} -eq 0 ] && digits=(0 1 2 3 4 5 6 7 8 9)
for d in "${digits[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
  echo "$(date -u +%H:%M:%S) start digit $d$suffix"
  out="weights/ldm/mnist-$d-cpu$suffix"
  if [ -n "$suffix" ]; then
    recipe=(--from-weights "weights/ldm/mnist-$d-cpu" --negative-kind classes --clf-pool 1000 --clf-steps 1000)
  else
    recipe=(--vq-steps 800 --unet-steps 6000 --latent-scaling std --latent-target-std 0.5 --t 200
            --clf-pool 1000 --negatives 2000 --negative-sampler ddim)
  fi
  (rm -rf "$out"
   OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m xad train ldm --setting "mnist-anomalous:$d" "${recipe[@]}" \
     --eval-limit 200 --sweep-limit 100 --threads 1 --out "$out" > "/tmp/ldm-$d$suffix.log" 2>&1
   echo "$(date -u +%H:%M:%S) digit $d$suffix finished with status $?") &
  sleep 2
done
wait
echo "$(date -u +%H:%M:%S) all done"
