#!/usr/bin/env bash
# Create or refresh .venv with the pinned dependencies. Idempotent: a stamp file records what was
# installed, so later calls return at once. CPU torch comes from a local wheel folder when one is
# there (STREAMGUARD_WHEELS or /opt/wheels), else from PyTorch's CPU index - never a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/offline_env.sh

requirements="${1:-requirements.txt}"
python="${PYTHON:-python3}"
venv=".venv"
digest=$(cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)
stamp="$venv/.installed-$(basename "$requirements" .txt)-$digest"
[ -f "$stamp" ] && exit 0
# A stamp for a requirements file that includes this one (requirements-dev.txt starts with
# `-r requirements.txt`) covers it too: run.sh after test.sh must not install again.
for other in "$venv"/.installed-*-"$digest"; do
  [ -f "$other" ] || continue
  other_requirements="$(basename "$other")"
  other_requirements="${other_requirements#.installed-}"
  other_requirements="${other_requirements%-"$digest"}.txt"
  if [ -f "$other_requirements" ] && grep -qxF -- "-r $(basename "$requirements")" "$other_requirements"; then
    exit 0
  fi
done

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
wheels="${STREAMGUARD_WHEELS:-/opt/wheels}"
if compgen -G "$wheels/torch-*.whl" >/dev/null; then
  torch_source=(--find-links "$wheels")
else
  torch_source=(--extra-index-url https://download.pytorch.org/whl/cpu)
fi
echo "Installing $requirements into $venv (first run only, a few minutes)..."
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${torch_source[@]}" -r "$requirements" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e . 
"$venv/bin/python" -m pip check >/dev/null || { "$venv/bin/python" -m pip check; exit 1; }
touch "$stamp"
