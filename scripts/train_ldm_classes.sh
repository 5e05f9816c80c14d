#!/usr/bin/env bash
# Train (and evaluate) the labelled extension weights/ldm/mnist-<d>-cpu-classes: the same-class classifier
# on class-labelled pairs (--negative-kind classes), on the VQ autoencoder and UNet of weights/ldm/mnist-<d>-cpu
# (which must exist: scripts/train_ldm_all.sh). Two at a time, one thread each, a log per run in
# /tmp/ldm-<d>-classes.log. Usage: scripts/train_ldm_classes.sh [digits...] (default 0..9).
# About 15 min per digit on one AVX2 thread (pairs and classifier ~9, the card's evaluation and sweep ~6).
set -u
PY=${PY:-.venv/bin/python}
PARALLEL=${PARALLEL:-2}
digits=("$@")
[ ${#digits[@]} -eq 0 ] && digits=(0 1 2 3 4 5 6 7 8 9)
for d in "${digits[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 5; done
  echo "$(date -u +%H:%M:%S) start digit $d (classes)"
  (rm -rf "weights/ldm/mnist-$d-cpu-classes"
   OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" -m xad train ldm --setting "mnist-anomalous:$d" \
     --from-weights "weights/ldm/mnist-$d-cpu" --negative-kind classes --clf-pool 1000 --clf-steps 1000 \
     --eval-limit 200 --sweep-limit 100 --threads 1 --out "weights/ldm/mnist-$d-cpu-classes" \
     > "/tmp/ldm-$d-classes.log" 2>&1
   echo "$(date -u +%H:%M:%S) digit $d (classes) finished with status $?") &
  sleep 2
done
wait
echo "$(date -u +%H:%M:%S) all done"
