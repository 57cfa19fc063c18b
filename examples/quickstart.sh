#!/bin/sh
# Random search on a toy problem with the default store (local files, no server):
# create the experiment once, let a pool of 4 local workers run 20 jobs, show the best 5.
set -e
cd "$(dirname "$0")"
schedy show Quadratic >/dev/null 2>&1 || schedy add Quadratic random \
    x uniform '{"low": -5, "high": 5}' \
    y normal '{"mean": 0, "std": 2}'
schedy run Quadratic --max-jobs 20 --parallel 4 -- python3 quadratic.py %h
schedy list -t Quadratic -s result --limit 5
