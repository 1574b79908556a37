#!/bin/bash
# One command for a CUDA machine: the `gpu`-marked tests (nvdiffrast against the torch rasterizer included), each
# paper-size config for a few optimizer steps on 1 and 2 GPUs with bf16 under DDP, and the inference and streaming
# benchmarks. Prints each check's row as it ends and one table at the end (everything is written to $OUT_DIR,
# default outputs/gpu_check). Each check is stopped after $STEP_TIMEOUT seconds (default 900). The training corpus
# is built in $OUT_DIR/corpus unless one is already there (`synth` needs espeak-ng: on a machine without it, copy
# a corpus built elsewhere to that folder). Run from anywhere:
#   tools/gpu_check.sh                       # stand-ins: a small random wav2vec 2.0, the weight-free perceptual loss
#   WAV2VEC2=/models/wav2vec2-base-960h VGG19=/models/vgg19-dcbb9e9d.pth STEPS=50 tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
OUT=${OUT_DIR:-outputs/gpu_check}
STEPS=${STEPS:-10}
STEP_TIMEOUT=${STEP_TIMEOUT:-900}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device is visible to $PY; run this on a GPU machine" >&2
    exit 2
fi
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
DEVICE=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0))")
mkdir -p "$OUT/runs"
ROWS=()
row() {
    ROWS+=("$(printf '%-34s | %-6s | %8s | %s' "$1" "$2" "$3" "$4")")
    echo "${ROWS[-1]}"
}
timed() {  # name log command...: run, record status and wall time
    local name=$1 log=$2 start status
    shift 2
    start=$(date +%s)
    timeout "$STEP_TIMEOUT" "$@" >"$log" 2>&1
    status=$?
    row "$name" "$(case $status in 0) echo ok ;; 124) echo TIMEOUT ;; *) echo FAIL ;; esac)" "$(($(date +%s) - start)) s" "$(tail -n 1 "$log" | cut -c1-70)"
}

# Only the files that hold `gpu` tests (or $TESTS): the others need no GPU and may need packages a bare CUDA
# image lacks.
read -ra GPU_TESTS <<<"${TESTS:-$(grep -l "mark.gpu" tests/test_*.py | tr '\n' ' ')}"
timed "pytest -m gpu" "$OUT/pytest_gpu.log" "$PY" -m pytest -m gpu -q -rA "${GPU_TESTS[@]}"
[ -f "$OUT/corpus/index.json" ] || "$PY" -m talkinghead.data.cli synth --out "$OUT/corpus" --clips 12 --seconds 7 \
    >"$OUT/corpus.log" 2>&1
WAV2VEC2=${WAV2VEC2:-$OUT/wav2vec2_standin}
[ -d "$WAV2VEC2" ] || "$PY" -c "import sys; sys.path.insert(0, '.'); from tests.helpers import save_wav2vec2_standin; \
save_wav2vec2_standin(__import__('pathlib').Path('$WAV2VEC2'))"
PERCEPTUAL=(--model.init_args.perceptual gradients --model.init_args.perceptual_args null)
[ -n "${VGG19:-}" ] && PERCEPTUAL=(--model.init_args.perceptual_args.weights "$VGG19")
for gpus in 1 2; do
    [ "$gpus" -le "$GPUS" ] || continue
    common=(--config lightning_configs/loggers/csv.yaml --data.root "$OUT/corpus" --trainer.accelerator gpu
            --trainer.devices "$gpus" --trainer.strategy ddp --trainer.precision bf16-mixed
            --trainer.max_steps "$STEPS" --trainer.limit_val_batches 2 --trainer.enable_progress_bar false)
    for stage in facial_motion pose_vqvae pose_mapper motion_vae; do
        run="$OUT/runs/${stage}_${gpus}gpu"
        extra=(--trainer.default_root_dir "$run" --trainer.logger.init_args.save_dir "$run")
        case $stage in
            facial_motion | pose_mapper) extra+=(--model.init_args.audio_encoder_args.name_or_path "$WAV2VEC2") ;;&
            pose_mapper) extra+=(--model.init_args.vqvae_checkpoint "$(find "$OUT/runs/pose_vqvae_${gpus}gpu" -name last.ckpt | head -n 1)") ;;
            motion_vae) extra+=("${PERCEPTUAL[@]}") ;;
        esac
        timed "$stage.yaml, $gpus GPU, bf16" "$run.log" "$PY" -m talkinghead.lightning.cli fit \
            --config "lightning_configs/$stage.yaml" "${common[@]}" "${extra[@]}"
    done
done
timed "bench_streaming (bf16)" "$OUT/bench_streaming.txt" "$PY" benchmarks/bench_streaming.py --device cuda --bf16
timed "bench_pipeline (bf16)" "$OUT/bench_pipeline.txt" "$PY" benchmarks/bench_pipeline.py --device cuda --bf16 \
    --configs tiny paper
timed "bench_rasterizer" "$OUT/bench_rasterizer.txt" "$PY" benchmarks/bench_rasterizer.py
timed "bench_pipeline (bf16 + compile)" "$OUT/bench_pipeline_compile.txt" "$PY" benchmarks/bench_pipeline.py \
    --device cuda --bf16 --compile --configs tiny paper

echo
echo "gpu_check on $GPUS × $DEVICE ($(date -u +%Y-%m-%d)); logs in $OUT"
printf '%-34s | %-6s | %8s | %s\n' "check" "result" "time" "last line of its log"
printf '%s\n' "${ROWS[@]}"
cat "$OUT/bench_streaming.txt" "$OUT/bench_pipeline.txt" "$OUT/bench_rasterizer.txt" "$OUT/bench_pipeline_compile.txt" \
    2>/dev/null
! printf '%s\n' "${ROWS[@]}" | grep -qE "\| (FAIL|TIMEOUT) "
