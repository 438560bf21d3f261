"""polyembed: Beam pipelines that build training data for multilingual BERT / LaBSE encoders, and the
trainer that consumes it.

Two distributions come from this one file:

- ``polyembed`` (the default): pipelines/, transforms/, specs/ and trainer/ with the pipeline
  dependencies. ``--setup_file=./setup.py`` ships it to Dataflow workers; the development install is
  ``make install``: ``.[trainer,test]`` at the versions ``requirements/lock.txt`` pins.
- ``polyembed-trainer`` (built with ``POLYEMBED_DIST=trainer``, which ``python -m trainer.submit`` does):
  trainer/ and specs/ only, with requirements that never name tensorflow, tensorflow-text or tf-keras,
  so installing it into a training container keeps the TensorFlow build the container already has
  (those three must match each other's minor version; the container or ``trainer.submit`` provides them).
  Build it as a wheel: a wheel's metadata is fixed at build time, an sdist would re-run this file.
"""

import os

from setuptools import find_packages, setup

# Floors are the versions requirements/lock.txt pins (what `make test` runs) unless an older release is
# known to work; ceilings are what `make test-latest` passes. Beam 2.78 reads a DoFn's return annotation
# more strictly than 2.77 did; the suite runs on 2.78. tensorflow-transform 1.21 (there is no 1.20)
# requires TensorFlow 2.21, so 2.20 could never be installed beside it.
PIPELINE_REQUIRES = [
    "apache-beam[gcp]>=2.78,<3",
    "tensorflow>=2.21,<2.22",
    "tensorflow-text>=2.21,<2.22",
    "tensorflow-transform>=1.21,<2",
    "tensorflow-metadata>=1.20,<2",
    "lxml>=5.2",
    # .7z is LZMA2/BCJ with its own container; py7zr is the maintained pure-Python reader that
    # streams members, so archives can be transcoded without 7-Zip binaries on workers.
    "py7zr>=0.22",
    "numpy>=1.26",
    # Charts next to the statistics (translation_pairs' stats.png, inspect's histograms).
    "matplotlib>=3.8",
    # Beam stages --setup_file with `python -m build`; the launcher environment needs it.
    "build>=1.0",
]
# No TensorFlow pins here: see the docstring. A training container takes TensorFlow, tensorflow-text and
# tf-keras from requirements/trainer.txt, the lock's pins (see Dockerfile).
# tensorflow-hub (0.16.1, its newest release) imports pkg_resources, which setuptools 82 removed.
# safetensors reads Hugging Face folders (model.safetensors) as numpy arrays, without torch.
TRAINER_REQUIRES = ["tensorflow-hub>=0.16", "tensorflow-metadata>=1.20,<2", "pyyaml>=6", "setuptools<82",
                    "safetensors>=0.4"]
# datasketch is the MinHash baseline that bench/dedup.py and the dedup tests compare against. uv installs
# requirements/lock.txt (`make install`) and writes it (`make lock`); pip is what Beam's staging and
# trainer.submit call. Both are here so that the lock pins the tools of the environment too.
TEST_REQUIRES = ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "datasketch>=1.6", "uv>=0.13", "pip>=24"]

if os.environ.get("POLYEMBED_DIST") == "trainer":
    setup(
        name="polyembed-trainer",
        version="0.1.0",
        description="polyembed's BERT / LaBSE trainer (TPU, GPU, CPU) without the Beam pipelines",
        packages=find_packages(include=["specs", "specs.*", "trainer", "trainer.*"]),
        package_data={"trainer": ["configs/*.yaml"]},
        python_requires=">=3.10",
        install_requires=TRAINER_REQUIRES,
    )
else:
    setup(
        name="polyembed",
        version="0.1.0",
        description="Beam pipelines and a TPU trainer for multilingual BERT and LaBSE-style sentence encoders",
        packages=find_packages(include=["pipelines", "pipelines.*", "transforms", "transforms.*", "specs",
                                        "specs.*", "trainer", "trainer.*"]),
        package_data={"trainer": ["configs/*.yaml"]},
        python_requires=">=3.10",
        install_requires=PIPELINE_REQUIRES,
        extras_require={
            "trainer": TRAINER_REQUIRES,
            "test": TEST_REQUIRES,
        },
    )
