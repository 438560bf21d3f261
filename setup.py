"""polyembed: Beam pipelines that build training data for multilingual BERT / LaBSE encoders, and the
trainer that consumes it.

``--setup_file=./setup.py`` ships pipelines/, transforms/, specs/ and trainer/ to Dataflow workers with
the pipeline dependencies (``install_requires``). The trainer's own dependencies are in the
``trainer`` extra; they deliberately carry no TensorFlow pin, so installing the trainer into a
training container never replaces the TensorFlow build the container already has.
"""

from setuptools import find_packages, setup

PIPELINE_REQUIRES = [
    "apache-beam[gcp]>=2.77,<3",
    "tensorflow>=2.20,<2.22",
    "tensorflow-text>=2.20,<2.22",
    "tensorflow-transform>=1.20,<2",
    "tensorflow-metadata>=1.20,<2",
    "lxml>=5.2",
    # .7z is LZMA2/BCJ with its own container; py7zr is the maintained pure-Python reader that
    # streams members, so archives can be transcoded without 7-Zip binaries on workers.
    "py7zr>=0.22",
    "numpy>=1.26",
]

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
        "trainer": ["tensorflow-hub>=0.16", "tensorflow-metadata>=1.20,<2", "pyyaml>=6"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "ruff>=0.6", "datasketch>=1.6", "matplotlib>=3.8"],
    },
)
