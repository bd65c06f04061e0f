# syntax=docker/dockerfile:1
# One image for the whole cluster stack: the Ray head and GPU workers, the MLflow server,
# optuna-dashboard, and the submit client (`docker run --rm ... ablation submit FILE ...`).
#
# CUDA: torch's Linux x86_64 wheels on PyPI are CUDA builds that carry the CUDA runtime as
# nvidia-* wheels, so `pip install .` on a slim Python base gives a GPU-ready torch==2.14.1.
# The host needs only the NVIDIA driver and the NVIDIA Container Toolkit. For a torch built
# against another CUDA release, pass its wheel index: --build-arg TORCH_INDEX_URL=<index url>.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# curl: the services' health checks; tini: PID 1 that forwards signals and reaps Ray's and
# MLflow's child processes; g++: builds CBAM's CPU kernels on first use (about a second,
# cached in ~/.cache/ablation; without it CBAM runs its stock-op path).
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl tini g++ \
 && rm -rf /var/lib/apt/lists/*

# An unprivileged user; the directories a named volume is mounted on are created here, owned by
# it, so a fresh volume inherits that ownership.
RUN useradd --create-home --uid 1000 --shell /bin/bash ablation \
 && mkdir -p /var/lib/mlflow/artifacts /data \
 && chown -R ablation:ablation /var/lib/mlflow /data

WORKDIR /opt/ablation

# Dependencies in their own layer (torch is most of the image): rebuilt only when pyproject.toml
# changes, not on every code edit. A placeholder package lets pip resolve `.[server]` now.
COPY pyproject.toml README.md ./
RUN mkdir ablation && touch ablation/__init__.py \
 && pip install ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} ".[server]" \
 && pip uninstall -y ablation \
 && rm -rf ablation build ./*.egg-info

# The package itself (.dockerignore keeps secrets, stores and caches out of the context).
COPY . .
RUN pip install --no-deps . \
 && chmod 0755 deploy/*.sh deploy/*.py \
 && ablation --help > /dev/null

USER ablation
# The installed package lives in site-packages, its dashboard templates with it (package data).
ENV HOME=/home/ablation
ENTRYPOINT ["tini", "--"]
CMD ["ablation", "--help"]
