"""A training script that knows nothing about Schedy: it takes hyperparameters as
options and prints its results in a block that ``schedy run`` reads.

    python examples/quadratic.py --x 1.5 --y -0.5
"""

import argparse
import json
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--y", type=float, required=True)
args = parser.parse_args()

for step in range(1, 4):
    time.sleep(0.01)  # stands in for an epoch of training
    print("--- REPORT ---", json.dumps({"step": step, "loss": (args.x**2 + args.y**2) / step}))

print("--- RESULTS ---")
print(json.dumps({"result": args.x**2 + args.y**2}))
print("--- END RESULTS ---")
