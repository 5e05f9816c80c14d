#!/usr/bin/env bash
# Train (and evaluate) the shipped latent-diffusion models weights/ldm/mnist-<d>-cpu, two at a time,
# one thread each, a log per run in /tmp/ldm-<d>.log. Usage: scripts/train_ldm_all.sh [digits...]
# (default 0 1 2 3 4 5 6 7 8 9). Run from the repository root, e.g. with nohup in the background.
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
     --threads 1 --out "weights/ldm/mnist-$d-cpu" > "/tmp/ldm-$d.log" 2>&1
   echo "$(date -u +%H:%M:%S) digit $d finished with status $?") &
  sleep 2
done
wait
echo "$(date -u +%H:%M:%S) all done"
