// compile() as a pure function: deterministic, versioned by input, deep-frozen.
import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { EGRESS_GATEWAY, SIDECAR, s2, s4 } from '../../../fixtures/compile/resources';

t.test('compiling twice gives deep-equal snapshots with the same version', async (t) => {
  for (const opts of [SIDECAR, EGRESS_GATEWAY]) {
    const a = compile(s2(), opts);
    const b = compile(s2(), opts);
    t.not(a, b);
    t.same(a, b);
    t.equal(a.version, b.version);
    t.match(a.version, /^[0-9a-f]{64}$/);
  }
});

t.test('version changes with the inputs that change the output', async (t) => {
  const base = compile(s2(), SIDECAR).version;
  t.not(compile(s4(), SIDECAR).version, base);
  t.not(compile(s2(), { ...SIDECAR, outboundPolicy: 'REGISTRY_ONLY' }).version, base);
  t.not(compile(s2(), { ...SIDECAR, labels: { app: 'other' } }).version, base);
  t.not(compile(s2(), { ...SIDECAR, role: 'gateway' }).version, base);
  // Key order is not content.
  t.equal(compile(s2(), { certsDir: '/etc/certs', outboundPolicy: 'ALLOW_ANY', labels: { app: 'sleep' }, namespace: 'default', role: 'sidecar' }).version, base);
});

t.test('the snapshot is deep-frozen: mutation throws in strict mode', async (t) => {
  'use strict';
  const s = compile(s2(), SIDECAR);
  const l = s.listeners.get('0.0.0.0_80')!;
  t.throws(() => { (s as { version: string }).version = 'x'; }, TypeError);
  t.throws(() => { (l.chains as unknown[]).push(null); }, TypeError);
  t.throws(() => { (s.listeners as Map<string, unknown>).set('x', null); }, TypeError);
  t.throws(() => { (s.clusters as Map<string, unknown>).delete('PassthroughCluster'); }, TypeError);
  const rc = (l.chains[0]!.filter as unknown as { routeConfig: { exactDomains: Map<string, unknown> } }).routeConfig;
  t.throws(() => { rc.exactDomains.clear(); }, TypeError);
  const c = s.clusters.get('outbound|80||edition.cnn.com')!;
  t.throws(() => { (c.endpoints[0] as { port: number }).port = 1; }, TypeError);
  t.throws(() => { (s.resources.serviceEntries as unknown[]).pop(); }, TypeError);
  t.ok(s.clusters.has('PassthroughCluster'), 'reads still work');
});

t.test('compile does not need the clock or randomness', async (t) => {
  const now = Date.now;
  const random = Math.random;
  Date.now = () => { throw new Error('Date.now called'); };
  Math.random = () => { throw new Error('Math.random called'); };
  try {
    t.ok(compile(s2(), SIDECAR).version);
  } finally {
    Date.now = now;
    Math.random = random;
  }
});
