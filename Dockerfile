# The healcat image: the CLI, the workers and the migrations. CPU torch by default; for a GPU image
# build with --build-arg TORCH_INDEX_URL=<a CUDA wheel index> and run with the GPU exposed.
FROM python:3.11-slim
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 HEALCAT_HOME=/var/lib/healcat HEALCAT_DATA_DIR=/data
WORKDIR /app
RUN pip install --index-url "$TORCH_INDEX_URL" "torch>=2.1"
COPY pyproject.toml README.md ./
COPY catalog catalog
COPY ingest ingest
COPY migrations migrations
RUN pip install . && mkdir -p /var/lib/healcat /data
CMD ["healcat", "worker"]
