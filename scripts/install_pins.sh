#!/usr/bin/env sh
# Installs a pinned requirements file (the lock's requirements/trainer.txt) with TensorFlow as a build of
# the caller's choice at the pinned version: the training container's install step (Dockerfile).
#
#   scripts/install_pins.sh PINS TF_PACKAGE [PIP_ARGS...]
#
# TF_PACKAGE is tensorflow-tpu, 'tensorflow[and-cuda]' or tensorflow; it is installed at PINS' tensorflow
# version with PINS as constraints, then every other pin is installed as pinned with --no-deps (PINS is a
# whole closure). PIP (default: python -m pip) is the installer; tests set it to record the calls.
set -eu
pins=$1
tf_package=$2
shift 2
PIP=${PIP:-python -m pip}
tf_version=$(sed -n 's/^tensorflow==\([^ ;\\]*\).*/\1/p' "$pins")
if [ -z "$tf_version" ]; then
  echo "install_pins.sh: $pins pins no tensorflow version" >&2
  exit 2
fi
rest=$(mktemp)
grep -v '^tensorflow==' "$pins" > "$rest"
$PIP install "$tf_package==$tf_version" -c "$rest" "$@"
$PIP install --no-deps -r "$rest"
rm -f "$rest"
