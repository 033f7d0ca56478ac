# Build: compile TypeScript once; run: production dependencies and the compiled output only.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY workers ./workers
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
# The default command is the all-in-one process: without REDIS_URL it runs its own redis-server
# (installed here), without DATABASE_URL an embedded PGlite, both under /app/.engram. It listens
# on every interface, so it refuses to start without API_KEYS unless ALLOW_OPEN_ACCESS=true.
ENV NODE_ENV=production HOST=0.0.0.0
RUN apt-get update \
  && apt-get install -y --no-install-recommends redis-server \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY --from=build /app/dist ./dist
# The default kind under the caller's tenant, for API_KEYS (ENGRAM_KINDS_FILE=ops/tenant-kinds.yaml).
COPY ops/tenant-kinds.yaml ./ops/tenant-kinds.yaml
# The embedded services' data, written by the user the process runs as; mount a volume here.
RUN mkdir -p /app/.engram && chown node:node /app/.engram
USER node
EXPOSE 3000
CMD ["node", "--enable-source-maps", "dist/workers/all-in-one.js"]
