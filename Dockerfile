# mediaexport worker image (agents + HTTP ingress); used by docker-compose.yml.
# PyAV's wheel bundles FFmpeg (libx264/libx265), so no system codecs are needed.
FROM python:3.11.13-slim-bookworm

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md* ./
COPY pipeline ./pipeline
COPY agents ./agents
COPY ingress ./ingress
COPY schemas ./schemas
COPY service ./service
RUN pip install . && useradd --create-home --uid 10001 export \
    && mkdir -p /var/lib/mediaexport && chown export /var/lib/mediaexport
USER export
ENV EXPORT_HTTP_HOST=0.0.0.0 EXPORT_HTTP_PORT=8080 EXPORT_DATA_DIR=/var/lib/mediaexport
EXPOSE 8080
CMD ["mediaexport", "worker", "--loglevel", "info"]
