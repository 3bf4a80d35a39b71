"""ds_w2v: a DeepSpeed trainer for wav2vec 2.0 (pretraining, CTC and classification fine-tuning).

torch is required as ``torch>=2.4`` and never pinned here, so a torch already installed is kept: on a
CPU machine install the CPU build first (``pip install torch==2.13.0 --index-url
https://download.pytorch.org/whl/cpu``; plain PyPI's Linux torch is a multi-GB CUDA build) and pip
finds the requirement met.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildPyWithDsConfigs(build_py):
    """Copies the top-level ``ds_configs/*.json`` (their one source; no copy is committed inside
    the package) into the build tree as ``ds_w2v/ds_configs/``, so that the recipes' ``ds_configs/X.json``
    resolve in a wheel installed outside the checkout. An editable install reads the checkout's."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / "ds_w2v" / "ds_configs"
        self.mkpath(str(target))
        for src in sorted(Path("ds_configs").glob("*.json")):
            self.copy_file(str(src), str(target / src.name))


setup(
    name="ds_w2v",
    # the one source of the version: ds_w2v/__init__.py (ds-w2v --version prints it)
    version=re.search(r'^__version__ = "([^"]+)"', Path("ds_w2v/__init__.py").read_text(), re.M).group(1),
    description="DeepSpeed-optimised wav2vec 2.0: pretrain from scratch, fine-tune for ASR (CTC) and classification",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ds_w2v", "ds_w2v.*"]),
    package_data={"ds_w2v": ["recipes/*.yaml"]},
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "deepspeed>=0.16,<0.20",
        "webdataset>=0.2.86",
        "soundfile>=0.12",
        "soxr>=0.3",
        "jiwer>=3.0",
        "safetensors>=0.4",
        "pyyaml>=6",
        "tqdm>=4.60",
        "tensorboard>=2.12",
    ],
    extras_require={
        # transformers is the reference implementation the parity tests compare against; flashlight-text
        # (4 MB, no dependencies) runs the beam-search tests where a wheel exists (they skip elsewhere).
        "test": ["pytest>=7", "transformers>=4.40", "flashlight-text>=0.0.7; python_version < '3.13'"],
        # beam search with an n-gram LM (ds_w2v/lm/decoder.py): flashlight-text's wheels bundle KenLM's
        # query side for CPython <= 3.12; on 3.13 pip builds it from source (cmake, a C++ compiler).
        "lm": ["flashlight-text>=0.0.7"],
        # espeakng-loader ships libespeak-ng + voices: the demo synthesises its corpora offline.
        "demo": ["espeakng-loader>=0.2", "matplotlib>=3.6"],
    },
    entry_points={"console_scripts": ["ds-w2v=ds_w2v.cli:main"]},
    cmdclass={"build_py": BuildPyWithDsConfigs},
)
