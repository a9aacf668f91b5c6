# The healcat image: the CLI, the workers and the migrations. CPU torch by default; for a GPU image
# build with --build-arg TORCH_INDEX_URL=<a CUDA wheel index> and run with the GPU exposed.
FROM python:3.11-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# the Makefile's torch: the same data and seed train the same weights in the image as outside it
ARG TORCH_SPEC=torch==2.13.0
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HEALCAT_HOME=/var/lib/healcat HEALCAT_DATA_DIR=/data
WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"
COPY pyproject.toml README.md ./
COPY catalog catalog
COPY ingest ingest
COPY migrations migrations
RUN pip install . && mkdir -p /var/lib/healcat /data \
    && useradd --system --uid 10001 --home-dir /var/lib/healcat healcat && chown healcat /var/lib/healcat
# not root: the workers read survey files (readable by uid 10001) and write only to the database and
# HEALCAT_HOME. A healcat-home volume made by an image before this one is root's: once,
#   docker compose run --rm -u root migrate chown -R 10001 /var/lib/healcat
USER healcat
CMD ["healcat", "worker"]
