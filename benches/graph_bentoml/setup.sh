#!/usr/bin/env bash
# The BentoML baseline's venv (benches/.bentoml-venv), apart from inferd's: BentoML 1.4 from PyPI,
# and torch + transformers from the project's venv (.venv, `make setup`) through a .pth file, so
# that both run the very same model code without a second 3 GB torch. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=benches/.bentoml-venv
BENTOML_VERSION=1.4.40
STAMP="$VENV/.installed-$BENTOML_VERSION"
if [[ -f "$STAMP" ]]; then
  echo "BentoML $BENTOML_VERSION is installed in $VENV"
  exit 0
fi
test -x .venv/bin/python || { echo "run 'make setup' first: the baseline borrows torch and transformers from .venv"; exit 1; }
echo "installing BentoML $BENTOML_VERSION into $VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "bentoml==$BENTOML_VERSION"
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PROJECT_SITE=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# After BentoML's own packages: where a package is in both, BentoML's wins.
echo "$PROJECT_SITE" > "$SITE/zz-inferd-torch.pth"
"$VENV/bin/python" -c 'import bentoml, torch, transformers; print("bentoml", bentoml.__version__, "torch", torch.__version__, "transformers", transformers.__version__)'
touch "$STAMP"
