# Sourced by the tools/gpu/*.sh scripts: installs the carried Keras wheels (.whl/, unless
# SKIP_WHL is set), points the data root at the carried .gpu/data, selects Keras' JAX backend,
# creates $out (default /tmp/out) and prints the accelerator and versions.
out=${OUT:-/tmp/out}
mkdir -p "$out"
if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export KERAS_BACKEND=jax MLSR_DATA="$PWD/.gpu/data" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L 2>/dev/null
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
