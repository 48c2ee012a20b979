#!/usr/bin/env bash
# Run every benchmark in turn on one core; the output also goes to
# benchmarks/last_run.txt. Extra arguments are ignored. About 4 minutes on
# the project machine, most of it the MILPs of bench_regret.py.
#   BENCH_CPU=0 benchmarks/run_all.sh    # pin to another core (default: the last one)
set -euo pipefail
cd "$(dirname "$0")"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 NUMBA_NUM_THREADS=1
{
  echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(getconf _NPROCESSORS_ONLN) cores, python $(python -c 'import sys; print(sys.version.split()[0])')"
  python bench_serving.py
  python bench_infida.py
  python bench_regret.py
} 2>&1 | tee last_run.txt
