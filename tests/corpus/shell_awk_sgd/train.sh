#!/usr/bin/env bash
# Linear regression by gradient descent in awk, printing like many hand-written trainers:
# a header, one progress line per epoch, a validation line every 5 epochs, a final summary.
# The truth (the values awk computed, at full precision) goes to $EXPBOOK_CORPUS_TRUTH.
set -euo pipefail
epochs=${1:-20}
lr=${2:-0.05}
echo "config: epochs=$epochs lr=$lr samples=64 seed=7"
awk -v epochs="$epochs" -v lr="$lr" -v truth="${EXPBOOK_CORPUS_TRUTH:-/dev/null}" '
BEGIN {
  srand(7); n = 64
  for (i = 0; i < n; i++) { x[i] = rand() * 2 - 1; y[i] = 3 * x[i] + 0.5 + (rand() - 0.5) * 0.2 }
  w = 0; b = 0; first = 1
  printf "{\"framework\": \"awk\", \"versions\": {}, \"points\": [" > truth
  for (e = 1; e <= epochs; e++) {
    gw = 0; gb = 0; loss = 0
    for (i = 0; i < n; i++) { d = w * x[i] + b - y[i]; loss += d * d; gw += 2 * d * x[i]; gb += 2 * d }
    loss /= n; w -= lr * gw / n; b -= lr * gb / n
    printf "epoch %d/%d  train_loss=%.5f  w=%.4f  b=%.4f\n", e, epochs, loss, w, b
    point("train_loss", e, loss); point("w", e, w); point("b", e, b)
    if (e % 5 == 0) {
      vl = 0; for (i = 0; i < 16; i++) { xv = i / 8 - 1; d = w * xv + b - (3 * xv + 0.5); vl += d * d }
      vl /= 16
      printf "  validation: mse %.6f\n", vl
      point("val_mse", e, vl)
    }
  }
  printf "done: final train_loss %.5f\n", loss
  printf "]}\n" > truth
}
function point(key, e, value) {
  printf "%s{\"key\": \"%s\", \"step\": null, \"epoch\": %d, \"value\": %.17g, \"printed\": true}", (first ? "" : ", "), key, e, value > truth
  first = 0
}'
