// Helper process for harness.test.ts: builds a one-host topology with a sleeping process in it,
// prints `NS <name>` per namespace, `PID <pid>` of the sleeper and `READY`, then idles, so the test
// can kill it by signal and check what the exit handlers (SIGTERM) or the next run's leftover sweep
// (SIGKILL) clean up. Not a test file itself.

import { Topology } from './topology';

async function main(): Promise<void> {
  // No tap here: teardown is left to the process-end handlers, which is what is under test.
  const topo = await Topology.create({ teardown: () => {} }, [{ name: 'lan', cidr: '198.18.9.0/24' }], [
    { name: 'solo', nets: [{ net: 'lan', address: '198.18.9.2' }] },
  ]);
  const sleeper = topo.spawn('solo', ['sleep', '30'], { name: 'sleeper' });
  process.stdout.write(`NS ${topo.ns('solo')}\nNS ${topo.bridgeNs}\nPID ${sleeper.pid}\nREADY\n`);
  // Bounded: exit on our own after 20 s if nobody kills us.
  setTimeout(() => process.exit(0), 20_000);
}

main().catch((err: unknown) => {
  process.stderr.write(`self-test-child: ${(err as Error).message}\n`);
  process.exit(1);
});
