#!/usr/bin/env bash
# gpu-slot.sh N COMMAND...: run COMMAND on N GPUs of its own (CUDA_VISIBLE_DEVICES), waiting for free ones.
#
# On a workstation with several GPUs, Snakemake's `--resources gpu=<count>` (workflow/profiles/local) keeps
# at most <count> GPU jobs running; this wrapper gives each of them different devices: it takes one lock file
# per GPU (flock, released when COMMAND exits, also on a crash) and exports CUDA_VISIBLE_DEVICES. The GPUs are
# those listed in CUDA_VISIBLE_DEVICES, else every GPU `nvidia-smi -L` reports. COMMAND runs unchanged when
# N is 0, when there is no GPU, and under SLURM (which sets CUDA_VISIBLE_DEVICES itself).
# Lock files: $NORMBENCH_GPU_LOCKS (default /tmp/normbench-gpu-locks-<uid>).
set -euo pipefail
need=${1:?usage: gpu-slot.sh N COMMAND...}
shift
if [ "$need" -eq 0 ] || [ -n "${SLURM_JOB_ID:-}" ]; then exec "$@"; fi
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
  IFS=, read -r -a gpus <<<"$CUDA_VISIBLE_DEVICES"
else
  count=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  gpus=()
  for ((i = 0; i < ${count:-0}; i++)); do gpus+=("$i"); done
fi
if [ "${#gpus[@]}" -eq 0 ]; then exec "$@"; fi
if [ "$need" -gt "${#gpus[@]}" ]; then
  echo "gpu-slot: $need GPUs asked for, ${#gpus[@]} visible (${gpus[*]})" >&2
  exit 1
fi
locks=${NORMBENCH_GPU_LOCKS:-/tmp/normbench-gpu-locks-$(id -u)}
mkdir -p "$locks"
waited=0
while true; do
  got=()
  fds=()
  for g in "${gpus[@]}"; do
    exec {fd}>"$locks/gpu$g.lock"
    if flock -n "$fd"; then
      got+=("$g")
      fds+=("$fd")
      [ "${#got[@]}" -eq "$need" ] && break
    else
      exec {fd}>&-
    fi
  done
  if [ "${#got[@]}" -eq "$need" ]; then
    CUDA_VISIBLE_DEVICES=$(
      IFS=,
      echo "${got[*]}"
    )
    export CUDA_VISIBLE_DEVICES
    echo "gpu-slot: CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES" >&2
    exec "$@" # the lock descriptors stay open in COMMAND until it exits
  fi
  for fd in "${fds[@]}"; do exec {fd}>&-; done
  if [ "$waited" -eq 0 ]; then echo "gpu-slot: waiting for $need free GPU(s) of ${gpus[*]}" >&2; fi
  waited=1
  sleep 2
done
