# The runwright image: `runwright api`, `runwright worker` and `runwright migrate` all run it.
FROM python:3.11-slim-bookworm

# Workers check action sources out of git, over https and ssh, and run every program an action
# starts inside bubblewrap (the worker service in docker-compose.yml lets it build its sandbox).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bubblewrap git openssh-client postgresql-client sqlite3 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs: copying the whole tree would bake local virtualenvs,
# caches and any .env with secrets into the image.
WORKDIR /build
COPY pyproject.toml ./
COPY core ./core
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY workers ./workers
RUN pip install . \
    && rm -rf /build

# Runs unprivileged: actions execute arbitrary playbooks and commands from git.
RUN useradd --create-home --uid 10001 --user-group runwright
USER runwright
WORKDIR /home/runwright
ENV RUNWRIGHT_HOME=/home/runwright/.runwright

EXPOSE 8080
CMD ["runwright", "api"]
