// DestinationRule `loadBalancer.warmup` through a real gateway on loopback: an endpoint added by a
// config change to a running cluster gets a small share of the requests during its warmup window
// (Envoy's slow start: weight x max(minimumPercent, time factor)), while without warmup it gets its
// full share at once. The config is a watched file; the change is applied as a reload.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort, oneUpstreamConfig, startTestRuntime, type TestGateway } from '../../../helpers/gateway';
import { recordingUpstream, send, until } from '../../../helpers/recording-upstream';

function config(gwPort: number, a: number, b: number | null, warmup: string): string {
  const eps = b === null ? `[{ address: 127.0.0.1, ports: { http: ${a} } }]` : `[{ address: 127.0.0.1, ports: { http: ${a} } }, { address: 127.0.0.1, ports: { http: ${b} } }]`;
  return oneUpstreamConfig({ gwPort, upstreamPort: a }).replace(`endpoints: [{ address: 127.0.0.1, ports: { http: ${a} } }]`, `endpoints: ${eps}`) + `---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: dr, namespace: default }
spec:
  host: up.example
  trafficPolicy:
    loadBalancer: { simple: ROUND_ROBIN${warmup} }
`;
}

async function shareOfNewHost(t: { teardown(fn: () => unknown): void }, warmup: string): Promise<number> {
  const a = await recordingUpstream(t);
  const b = await recordingUpstream(t);
  const gwPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-warmup-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.yaml');
  fs.writeFileSync(file, config(gwPort, a.port, null, warmup));
  const gw: TestGateway = await startTestRuntime(t, '', { configPaths: [file], embeddedConfig: null });
  for (let i = 0; i < 5; i++) await send(gwPort);
  const applied = gw.stat('sluice.config.applied') ?? 0;
  fs.writeFileSync(file, config(gwPort, a.port, b.port, warmup));
  await until(() => (gw.stat('sluice.config.applied') ?? 0) > applied, 'the reload with the second endpoint');
  for (let i = 0; i < 100; i++) await send(gwPort);
  return b.seen.length;
}

t.test('a host added to a running cluster warms up', async (t) => {
  const warmed = await shareOfNewHost(t, ', warmup: { duration: 60s, minimumPercent: 10 }');
  t.ok(warmed > 0 && warmed <= 15, `with warmup the new host got ${warmed} of 100 (weight x 10%: about 9)`);
});

t.test('without warmup the added host gets its full share at once', async (t) => {
  const full = await shareOfNewHost(t, '');
  t.equal(full, 50, 'round robin: half');
});
