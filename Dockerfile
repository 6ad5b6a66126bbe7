# syntax=docker/dockerfile:1
# tresor-attest: the attesting OpenAI-compatible proxy, as a small non-root image.
#
#   docker build -t tresor-attest .
#   buildah build --format docker -t tresor-attest .   # or podman build --format docker: the default OCI
#                                                       # format drops HEALTHCHECK (npm run test:container)
#   docker run --init --read-only -v tresor-state:/var/lib/tresor-attest \
#     -e TRESOR_API_KEY -e TRESOR_ATTEST_RELEASE_ROOT_FILE=/etc/tresor-attest/release-root.pub \
#     -v ./release-root.pub:/etc/tresor-attest/release-root.pub:ro tresor-attest
#
# It listens on 127.0.0.1:8787 inside the container (a Kubernetes sidecar shares the pod's
# loopback with the app). To serve other containers set TRESOR_ATTEST_LISTEN=0.0.0.0:8787 and
# mount a local token (TRESOR_ATTEST_LOCAL_TOKEN_FILE): a non-loopback listener refuses to start
# without one. See examples/docker-compose.yaml and examples/kubernetes/.
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: nothing is downloaded besides the registry packages (no browsers, no binaries).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:${NODE_VERSION}-slim AS runtime
ENV NODE_ENV=production \
    TRESOR_ATTEST_STATE_DIR=/var/lib/tresor-attest
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json config.example.yaml ./
COPY bin ./bin
COPY certs ./certs
# The only writable place: durable state (attestation pins, receipt journal, audit log, logs).
# A named volume mounted here inherits this owner and mode on first use.
RUN mkdir -p /var/lib/tresor-attest && chown node:node /var/lib/tresor-attest && chmod 0700 /var/lib/tresor-attest
VOLUME ["/var/lib/tresor-attest"]
# The node image's unprivileged user (uid 1000). Nothing at run time writes outside the volume,
# so the root filesystem can be read-only (docker run --read-only, readOnlyRootFilesystem).
USER node
EXPOSE 8787
# SIGTERM: stop accepting, drain in-flight requests and streams for up to shutdown_grace_seconds
# (30 s by default: give `docker stop -t`/terminationGracePeriodSeconds more), then exit 0.
# Node is PID 1 here: run with `--init` (tini) or `init: true` so stray children are reaped;
# the daemon handles SIGTERM/SIGINT itself either way.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.TRESOR_ATTEST_HEALTH_URL||'http://127.0.0.1:8787/healthz').then(r=>process.exit(r.status===200?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "bin/tresor-attest.js"]
CMD ["serve"]
