# syntax=docker/dockerfile:1
# The scoring service image: `edml serve` by default; every other edml command works too
# (`docker run IMAGE publish ...`). Build: docker build -t edml:0.1.0 .

# --- build: the pinned dependencies and edml into a venv ---------------------------------
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY avro ./avro
COPY edml ./edml
COPY trainer ./trainer
COPY model_publisher ./model_publisher
COPY services ./services
COPY controller ./controller
COPY retrainer ./retrainer
COPY batch_scoring ./batch_scoring
COPY data/nyc-taxi ./data/nyc-taxi
RUN python -m venv /opt/edml \
 && /opt/edml/bin/pip install --no-cache-dir -c constraints.txt .

# --- run: the venv only, no build tools, a non-root user ------------------------------------
FROM python:3.11-slim
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp edml
COPY --from=build /opt/edml /opt/edml
ENV PATH=/opt/edml/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/tmp \
    EDML_SCORING_DATA_DIR=/data \
    EDML_SCORING_WEB_PORT=6066
USER 10001:10001
WORKDIR /tmp
EXPOSE 6066
ENTRYPOINT ["edml"]
CMD ["serve"]
