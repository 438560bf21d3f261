# Training container for Vertex AI custom jobs on TPU VMs (and CPU): TensorFlow 2.20's TPU build,
# the matching tensorflow-text and tf-keras, and the polyembed trainer. Not built in CI.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:tf2.20 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:tf2.20
#   python -m trainer.submit ... --tpu_type=v5e-4 --container_uri=REGION-docker.pkg.dev/PROJECT/REPO/polyembed-trainer:tf2.20 -- ...
#
# For GPUs, build with --build-arg TF_PACKAGE=tensorflow[and-cuda] on a CUDA-capable base.
FROM python:3.11-slim

ARG TF_VERSION=2.20.0
ARG TF_MINOR=2.20
ARG TF_PACKAGE=tensorflow-tpu

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 TF_CPP_MIN_LOG_LEVEL=2

# The TPU build of TensorFlow and its libtpu come from Google's release index.
RUN pip install "${TF_PACKAGE}==${TF_VERSION}" -f https://storage.googleapis.com/libtpu-tf-releases/index.html

# tensorflow-text and tf-keras declare a dependency on the 'tensorflow' distribution, which the TPU
# build does not satisfy by name: install them without dependencies, matched to the minor version.
RUN pip install --no-deps "tensorflow-text==${TF_MINOR}.*" "tf-keras==${TF_MINOR}.*"

WORKDIR /src
COPY setup.py pyproject.toml README.md ./
COPY specs ./specs
COPY trainer ./trainer
# The trainer-only distribution: trainer/ and specs/, requirements without TensorFlow pins.
RUN POLYEMBED_DIST=trainer pip install . && rm -rf /src

WORKDIR /
ENTRYPOINT ["python", "-m", "trainer.task"]
