// Preloaded into the sluice process under test (`node --require cpu-ipc.js dist/proxy/cli.js run ...`)
// so the bench reads its CPU with process.cpuUsage() over IPC while the real CLI runs unchanged.
// The IPC channel is unref'd: it must not keep sluice alive when it is told to stop.

if (process.send !== undefined) {
  process.on('message', (m: unknown) => {
    if (m === 'usage') {
      const u = process.cpuUsage();
      process.send?.({ cpuUs: u.user + u.system, rss: process.memoryUsage().rss });
    }
  });
  process.channel?.unref();
}
