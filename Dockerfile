# One pipeline image for many Kratix Promises: the `runner`, Terraform, the shipped step files
# (/steps.d) and the Terraform modules they use (/terraform). A Promise's Pipeline container
# says `command: [runner, run, create-bucket]`; a platform team adds its own steps in an image
# built FROM this one (docs/image.md).
#
#   docker build -t kratix-step-runner:0.1.0 .
#   docker build --build-arg TERRAFORM_VERSION=1.9.8 --build-arg TERRAFORM_SHA256_AMD64=... .
FROM python:3.12-slim-bookworm

# Terraform is pinned and its download verified. The checksums are HashiCorp's published ones,
# from https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_SHA256SUMS
# (whose signature `gpg --verify` checks against HashiCorp's key): change all three together.
ARG TERRAFORM_VERSION=1.9.8
ARG TERRAFORM_SHA256_AMD64=186e0145f5e5f2eb97cbd785bc78f21bae4ef15119349f6ad4fa535b83b10df8
ARG TERRAFORM_SHA256_ARM64=f85868798834558239f6148834884008f2722548f84034c9b0f62934b2d73ebb
# Set by `docker buildx build --platform linux/arm64`; amd64 otherwise.
ARG TARGETARCH=amd64

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_IN_AUTOMATION=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Python downloads and unzips, so no curl or unzip packages are needed; sha256sum checks.
RUN case "${TARGETARCH}" in \
      amd64) sum="${TERRAFORM_SHA256_AMD64}" ;; \
      arm64) sum="${TERRAFORM_SHA256_ARM64}" ;; \
      *) echo "no Terraform checksum for ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && url="https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_${TARGETARCH}.zip" \
 && python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "$url" /tmp/terraform.zip \
 && echo "${sum}  /tmp/terraform.zip" | sha256sum --check --strict - \
 && python -m zipfile -e /tmp/terraform.zip /tmp/terraform \
 && install -m 0755 /tmp/terraform/terraform /usr/local/bin/terraform \
 && rm -rf /tmp/terraform /tmp/terraform.zip \
 && terraform version

# The runner, from this checkout (runtime dependencies only, no test extras).
COPY pyproject.toml README.md /tmp/runner-src/
COPY runner/ /tmp/runner-src/runner/
RUN pip install /tmp/runner-src && rm -rf /tmp/runner-src

# The shipped steps and their Terraform modules: the steps say `workdir: ../terraform/minio-bucket`,
# relative to their own folder, so /steps.d and /terraform sit side by side.
COPY steps.d/ /steps.d/
COPY terraform/ /terraform/
# Providers baked in (a local mirror Terraform finds by itself): no registry download per run.
RUN terraform -chdir=/terraform/minio-bucket providers mirror -platform="linux_${TARGETARCH}" /usr/local/share/terraform/plugins \
 && runner validate --stamp /steps.d

RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin runner
USER 10001:10001
WORKDIR /home/runner

ENTRYPOINT ["runner"]
CMD ["--help"]
