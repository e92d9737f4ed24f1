# The Flujo GitHub App: `docker build -t flujo-bot .`, register the App once (its settings
# are stored in the volume, /data/.env and /data/app-private-key.pem, mode 0600):
#   docker run --rm -p 8080:8080 -v flujo-data:/data \
#     -e FLUJO_BOT_PUBLIC_URL=https://flujo.example.com flujo-bot setup
# then serve (the default command; other `flujo bot` commands run the same way):
#   docker run -d --name flujo-bot -p 8080:8080 -v flujo-data:/data flujo-bot
#   docker exec flujo-bot flujo bot token OWNER/REPO --installation ID
# On PostgreSQL (several processes, `flujo bot worker` beside `serve`): docker-compose.yml.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
# Dependencies first (a layer that changes only with uv.lock), then the project.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY README.md ./
COPY flujo ./flujo
COPY spec ./spec
COPY engine ./engine
COPY learn ./learn
COPY bot ./bot
COPY templates ./templates
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 flujo && mkdir /data && chown flujo /data
COPY --from=build /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    FLUJO_BOT_DB=/data/bot.db \
    FLUJO_BOT_HOST=0.0.0.0 \
    FLUJO_BOT_PORT=8080 \
    PYTHONUNBUFFERED=1
USER flujo
WORKDIR /data
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["flujo", "bot"]
CMD ["serve"]
