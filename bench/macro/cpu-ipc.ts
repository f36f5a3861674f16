// Preloaded into the sluice process under test (`node --require cpu-ipc.js dist/proxy/cli.js run ...`)
// so the bench reads its CPU with process.cpuUsage() over IPC while the real CLI runs unchanged.
// The IPC channel is unref'd: it must not keep sluice alive when it is told to stop.
// 'gc' (the process runs with --expose-gc): two full collections, then the RSS a second later, so the idle-memory
// bench can tell what connections retain from garbage the heap has not collected yet.

if (process.send !== undefined) {
  process.on('message', (m: unknown) => {
    if (m === 'usage') {
      const u = process.cpuUsage();
      process.send?.({ cpuUs: u.user + u.system, rss: process.memoryUsage().rss });
    } else if (m === 'gc') {
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.();
      gc?.();
      // V8 hands freed pages back to the OS from background tasks after the collection.
      setTimeout(() => process.send?.({ rss: process.memoryUsage().rss }), 1000);
    }
  });
  process.channel?.unref();
}
