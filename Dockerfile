# hexr-pid-mapper images. Two targets, one build:
#
#   docker build --target daemon      -t hexr-pid-mapper:0.1.0 .
#   docker build --target spire-agent -t hexr-spire-agent:1.13.3-hexr0.1.0 .
#
# Base images are pinned to exact version tags. Pin them by digest as well
# (`image:tag@sha256:...`) when cutting a release: no registry is reachable
# where this file was written, so no digest could be looked up.
# test/unit/dockerfile.test.ts checks this file (dockerfile-utils + our own
# invariants) because no Docker engine is available to build it in CI.

# ---------------------------------------------------------------------------
# build: compile TypeScript, then keep only production dependencies.
FROM node:22.23.3-bookworm-slim AS build
WORKDIR /src
RUN chown node:node /src
# npm ci runs dependency install scripts: do it as the unprivileged `node` user.
USER node
COPY --chown=node:node package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY --chown=node:node tsconfig.json tsconfig.build.json ./
COPY --chown=node:node src ./src
COPY --chown=node:node proto ./proto
COPY --chown=node:node bin ./bin
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---------------------------------------------------------------------------
# runtime-base: Node 22 + dist/, proto/, package.json, production node_modules.
# node:*-slim rather than gcr.io/distroless/nodejs22-debian12 because distroless
# publishes no version tags (only :latest/:nonroot), so it could only be pinned
# by digest; npm, npx, corepack and yarn are removed to keep the surface small.
FROM node:22.23.3-bookworm-slim AS runtime-base
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
      /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /opt/hexr
# Files stay owned by root and read-only for the runtime user.
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/proto ./proto
# `hexr-pid-mapper` on PATH (kubectl exec ... -- hexr-pid-mapper pidmap): the
# launcher runs /opt/hexr/dist/main.js, found relative to its own real path.
COPY --from=build /src/bin/hexr-pid-mapper ./bin/hexr-pid-mapper
RUN chmod 0555 /opt/hexr/bin/hexr-pid-mapper && ln -s /opt/hexr/bin/hexr-pid-mapper /usr/local/bin/hexr-pid-mapper

# ---------------------------------------------------------------------------
# daemon: the per-node PID mapper (daemonset/daemonset.yaml).
FROM runtime-base AS daemon
# Runs as uid 0 on purpose: the daemon reads /proc/PID/root and /proc/PID/ns/pid
# of every pod's processes (other users'), which the kernel allows only to a
# process with CAP_SYS_PTRACE over them, and reads marker files owned by
# workload users (CAP_DAC_READ_SEARCH); capabilities of a non-root user are
# cleared at exec. The DaemonSet drops ALL capabilities and adds back only
# SYS_PTRACE and DAC_READ_SEARCH, with a read-only root filesystem.
USER 0:0
# --optimize-for-size: the daemon is I/O-bound and long-lived; V8's
# small-footprint mode keeps RSS with 10,000 mappings well under 150 MB (see
# README "Benchmarks"). It cannot be set through NODE_OPTIONS.
ENTRYPOINT ["/usr/local/bin/node", "--optimize-for-size", "/opt/hexr/dist/main.js"]
CMD ["daemon"]

# ---------------------------------------------------------------------------
# spire-agent: the official SPIRE agent binary on a Node 22 runtime, so that
# plugin_cmd can start our plugin (the upstream image is FROM scratch and has
# no Node). The agent binary is statically linked. 1.13.3 is the SPIRE version
# the spire test tier runs (test/go/go.mod pins it; test/unit/dockerfile.test.ts
# keeps the two equal): change both together.
FROM ghcr.io/spiffe/spire-agent:1.13.3 AS spire-upstream

FROM runtime-base AS spire-agent
COPY --from=spire-upstream /opt/spire/bin/spire-agent /opt/spire/bin/spire-agent
# plugin_cmd = "/opt/hexr/bin/hexr-plugin.mjs"; its sha256 is plugin_checksum
# (it covers that file only: see the comment inside it).
COPY --from=build /src/bin/hexr-plugin.mjs /opt/hexr/bin/hexr-plugin.mjs
RUN chmod 0555 /opt/hexr/bin/hexr-plugin.mjs
WORKDIR /opt/spire
# Runs as uid 0: the daemon's local API socket is /run/hexr/pid-mapper.sock,
# mode 0600, owned by root, and the plugin is a child of the agent (same uid).
# uid 0 needs no capability to connect to a socket it owns, so the agent's pod
# can still drop ALL capabilities.
USER 0:0
ENTRYPOINT ["/opt/spire/bin/spire-agent", "run"]
CMD ["-config", "/opt/spire/conf/agent/agent.conf"]
