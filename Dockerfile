# One image for web, worker, beat and connectors; docker-compose.yml picks the command.

# Browser libraries (gridstack, plotly.js) come from npm, pinned by package-lock.json; only their files are kept.
FROM node:20-bookworm-slim AS browser-libraries
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=analytics_platform.settings.prod

RUN apt-get update \
    && apt-get install --yes --no-install-recommends curl libpq5 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 analytics

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY . .
COPY --from=browser-libraries /build/node_modules/gridstack/dist /app/node_modules/gridstack/dist
COPY --from=browser-libraries /build/node_modules/plotly.js-dist-min /app/node_modules/plotly.js-dist-min
# collectstatic needs settings that load; these build-time values are never used at run time.
RUN DJANGO_SECRET_KEY=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(60))') \
    DJANGO_ALLOWED_HOSTS=localhost DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost:6379/0 \
    STATIC_ROOT=/app/var/static python manage.py collectstatic --noinput \
    && chown -R analytics /app/var

USER analytics
EXPOSE 8000
CMD ["python", "manage.py", "serve", "--bind", "0.0.0.0", "--port", "8000", "--proxy-headers"]
