# sluice image: one image for both roles (sidecar and gateway) and for the capture init step.
#   sidecar:  docker run --user 1337:1337 sluice run --role sidecar --config /etc/istio/config
#   gateway:  docker run sluice run --role gateway --labels istio=egressgateway --config /etc/istio/config
#   init:     docker run --cap-add NET_ADMIN --user 0 sluice iptables        (as istio-init does)

# ---- build: compile TypeScript and the SO_ORIGINAL_DST addon (needs a C compiler, not shipped)
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY proxy ./proxy
COPY config ./config
COPY test ./test
COPY bench ./bench
RUN npm ci --no-audit --no-fund && npm run build \
 && test -f proxy/transport/native/build/Release/original_dst.node \
 && npm prune --omit=dev

# ---- runtime: Node LTS slim + iptables/nftables for `sluice iptables`; runs as UID 1337 like istio-proxy
FROM node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends iptables nftables && rm -rf /var/lib/apt/lists/* \
 && groupadd -g 1337 istio-proxy && useradd -u 1337 -g 1337 -M -d /nonexistent -s /usr/sbin/nologin istio-proxy
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/config/samples ./config/samples
COPY --from=build /src/proxy/transport/native/build/Release/original_dst.node ./proxy/transport/native/build/Release/original_dst.node
USER 1337:1337
EXPOSE 15000 15001 15006 15021 15090
ENTRYPOINT ["node", "/app/dist/proxy/cli.js"]
CMD ["--help"]
