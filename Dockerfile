# sluice image: one image for both roles (sidecar and gateway) and for the capture init step.
#   sidecar:  docker run --user 1337:1337 sluice run --role sidecar --config /etc/istio/config
#   gateway:  docker run sluice run --role gateway --labels istio=egressgateway --config /etc/istio/config
#   init:     docker run --cap-add NET_ADMIN --cap-add NET_RAW --user 0 sluice iptables   (as istio-init does)
# Kubernetes manifests and `sluice inject`: deploy/README.md. Proven on a machine without Docker by
# `npm run image:test` (test/image/image-test.sh).

# ---- build: compile TypeScript and the SO_ORIGINAL_DST addon (needs a C compiler, not shipped)
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# node-gyp would otherwise download Node's headers from nodejs.org (fails offline); the base image
# ships them in /usr/local/include/node, for exactly the Node it runs.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: `prepare` would build here, and again below. None of the dependencies needs an
# install script.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY proxy ./proxy
COPY config ./config
COPY test ./test
COPY bench ./bench
# One build; `npm run build` fails (and so the image build) if the addon does not compile, and the
# test -f makes sure of it whatever npm does.
RUN npm run build \
 && test -f proxy/transport/native/build/Release/original_dst.node \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: Node LTS slim + iptables/nftables for `sluice iptables`; runs as UID 1337 like istio-proxy
FROM node:24-bookworm-slim
# tini as PID 1: forwards SIGTERM to sluice (which drains, see --drain-duration) and reaps zombies.
# Only to its direct child (no -g): the sluice primary tells its workers itself.
RUN apt-get update && apt-get install -y --no-install-recommends iptables nftables tini && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 1337 istio-proxy && useradd -u 1337 -g 1337 -M -d /nonexistent -s /usr/sbin/nologin istio-proxy
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/config/samples ./config/samples
COPY --from=build /src/proxy/transport/native/build/Release/original_dst.node ./proxy/transport/native/build/Release/original_dst.node
USER 1337:1337
EXPOSE 15000 15001 15006 15021 15090
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/proxy/cli.js"]
CMD ["--help"]
