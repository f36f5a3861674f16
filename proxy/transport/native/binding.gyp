# Built by `npm run build:addon` (node-gyp, shipped with npm) into build/Release/original_dst.node.
# C only, against node_api.h: no node-addon-api package, no C++ runtime, ABI-stable across Node versions.
# No -Werror: a new compiler warning on a user's machine must not cost them the sidecar capture listener.
{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["original_dst.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
