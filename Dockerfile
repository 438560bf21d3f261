# Training container for Vertex AI custom jobs on TPU VMs (and GPU, CPU): the lock's TensorFlow as its TPU
# build, with the lock's tensorflow-text, tf-keras and everything else from requirements/trainer.txt (the
# lock's pins for the trainer, written by `make lock`), and the polyembed trainer. Not built in CI.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:TAG
#   python -m trainer.submit ... --tpu_type=v5e-4 --container_uri=REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:TAG -- ...
#
# For GPUs: --build-arg TF_PACKAGE='tensorflow[and-cuda]'; for CPU: --build-arg TF_PACKAGE=tensorflow.
# The TPU build must exist for the lock's TensorFlow version: the build stops at the first RUN if not.
FROM python:3.11-slim

ARG TF_PACKAGE=tensorflow-tpu

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /src
COPY requirements/trainer.txt ./requirements/
COPY scripts/install_pins.sh ./scripts/
# TensorFlow at the lock's version as TF_PACKAGE (its TPU build and libtpu come from Google's release
# index), then every other pin exactly, without resolving again: tensorflow-text and tf-keras declare a
# dependency on the 'tensorflow' distribution, which the TPU build does not satisfy by name.
RUN scripts/install_pins.sh requirements/trainer.txt "${TF_PACKAGE}" \
        -f https://storage.googleapis.com/libtpu-tf-releases/index.html
COPY setup.py pyproject.toml README.md ./
COPY specs ./specs
COPY trainer ./trainer
# The trainer-only distribution: trainer/ and specs/; its requirements are all pinned above.
RUN POLYEMBED_DIST=trainer pip install --no-deps . && rm -rf /src

WORKDIR /
ENTRYPOINT ["python", "-m", "trainer.task"]
