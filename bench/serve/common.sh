# Shared by the serving benchmarks (sourced): wrk, the model they serve (ESMM on a 200k-row
# simulated funnel, trained once into $OUT/model), and `funnel serve` on loopback until the
# script exits. Needs FUNNEL, OUT and PORT set.
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "installing wrk" >&2; apt-get install -y -qq wrk >/dev/null; }
if [ ! -f "$OUT/model/model.json" ]; then
  "$FUNNEL" simulate --rows 200000 --seed 5 --out "$OUT/data" >/dev/null
  "$FUNNEL" train --train "$OUT/data/train.csv" --model esmm --out "$OUT/model" >/dev/null
fi

# Starts the server on $OUT/model (log in $OUT/serve.log), sets PID, stops it on exit, and waits
# until it answers /healthz.
start_server() {
  "$FUNNEL" serve --model "$OUT/model" --port "$PORT" --threads 2 2>"$OUT/serve.log" &
  PID=$!
  trap 'kill $PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
}
