// ClusterManager.update works in slices between turns of the event loop (60,000 clusters
// took 0.3-0.5 s per reload in one block) and swaps in one step: until the update resolves, get()
// answers with the previous clusters and none of them is closed; after, unchanged clusters are the
// same objects, changed and removed ones are closed. Also: sameValue, which replaced a
// JSON.stringify per cluster, and close() during an update. Real STATIC clusters, no sockets.
import t from 'tap';
import type { Cluster, Snapshot } from '../../../../config/compile/snapshot';
import { StatsStore } from '../../../../proxy/observe/stats';
import { ClusterManager, sameValue } from '../../../../proxy/upstream/cluster-manager';
import type { UpstreamCluster } from '../../../../proxy/upstream/cluster';

function cluster(i: number, address = '198.18.0.1'): Cluster {
  return {
    name: `outbound|80||svc-${i}.example`, sniName: `outbound_.80_._.svc-${i}.example`, type: 'STATIC', host: `svc-${i}.example`, port: 80, subset: '', protocol: 'HTTP',
    endpoints: [{ address, port: 80, labels: { version: 'v1' }, weight: 1, locality: '', network: '' }],
    lb: { kind: 'ROUND_ROBIN' }, connectTimeoutMs: 1000, idleTimeoutMs: 0, maxRequestsPerConnection: 0,
    tcpKeepalive: null, dnsRefreshMs: 60_000,
    circuitBreakers: { maxConnections: 4294967295, maxPendingRequests: 4294967295, maxRequests: 4294967295, maxRetries: 4294967295 },
    tls: null, emptyReason: null,
  };
}

function snapshotOf(clusters: Cluster[]): Snapshot {
  return { clusters: new Map(clusters.map((c) => [c.name, c])) } as unknown as Snapshot;
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('a sliced update: old clusters serve until one swap; unchanged carried over, changed and removed closed after', async (t) => {
  const cm = new ClusterManager(new StatsStore(), { sliceMs: 0 });
  t.teardown(() => cm.close());
  const N = 800;
  await cm.update(snapshotOf(Array.from({ length: N }, (_, i) => cluster(i))));
  const before = new Map<string, UpstreamCluster>([...cm.all()].map((c) => [c.name, c]));
  t.equal(before.size, N);

  // 0..199 same values (new objects), 200..399 changed endpoint, 400..599 removed, 600..799 same, N..N+199 added.
  const next = [
    ...Array.from({ length: 200 }, (_, i) => cluster(i)),
    ...Array.from({ length: 200 }, (_, i) => cluster(200 + i, '198.18.0.2')),
    ...Array.from({ length: 200 }, (_, i) => cluster(600 + i)),
    ...Array.from({ length: 200 }, (_, i) => cluster(N + i)),
  ];
  let done = false;
  const updating = cm.update(snapshotOf(next)).then(() => (done = true));
  let turnsWhileUpdating = 0;
  let servedByOld = true;
  while (!done && turnsWhileUpdating < 10_000) {
    for (const [name, c] of before) if (cm.get(name) !== c || c.isClosed) servedByOld = false;
    if (cm.get(`outbound|80||svc-${N}.example`) !== undefined) servedByOld = false;
    turnsWhileUpdating++;
    await turn();
  }
  await updating;
  t.ok(turnsWhileUpdating > 2, `the update gave the event loop ${turnsWhileUpdating} turns`);
  t.ok(servedByOld, 'until the swap every lookup answered with the previous clusters, none closed');

  for (let i = 0; i < N + 200; i++) {
    const name = `outbound|80||svc-${i}.example`;
    const now = cm.get(name);
    const old = before.get(name);
    if (i < 200 || (i >= 600 && i < N)) {
      t.equal(now, old, `${name}: unchanged, carried over`);
      t.notOk(old!.isClosed);
    } else if (i < 400) {
      t.not(now, old, `${name}: changed, rebuilt`);
      t.equal(now!.hosts[0]!.address, '198.18.0.2');
      t.ok(old!.isClosed, `${name}: the old generation is closed`);
    } else if (i < 600) {
      t.equal(now, undefined, `${name}: removed`);
      t.ok(old!.isClosed);
    } else {
      t.same(now?.config, cluster(i), `${name}: added`);
      t.ok(now !== undefined && !now.isClosed);
    }
  }
  t.equal([...cm.all()].length, 800);
});

t.test('close() during an update: nothing is swapped in', async (t) => {
  const cm = new ClusterManager(new StatsStore(), { sliceMs: 0 });
  await cm.update(snapshotOf([cluster(0)]));
  const updating = cm.update(snapshotOf(Array.from({ length: 500 }, (_, i) => cluster(i, '198.18.0.3'))));
  await turn();
  cm.close();
  await updating;
  t.equal(cm.get('outbound|80||svc-0.example'), undefined, 'closed: no clusters');
  t.equal([...cm.all()].length, 0);
});

t.test('sameValue: equal compiled values, key order aside; stricter than JSON where JSON is lossy', async (t) => {
  t.ok(sameValue(cluster(1), cluster(1)), 'same config, different objects');
  t.notOk(sameValue(cluster(1), cluster(2)));
  t.notOk(sameValue(cluster(1), cluster(1, '198.18.0.9')), 'a nested difference');
  t.ok(sameValue({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 }), 'key order does not matter');
  t.notOk(sameValue({ a: 1 }, { a: 1, b: undefined }), 'an extra member, even undefined');
  t.notOk(sameValue({ a: NaN }, { a: null }), 'NaN is not null (JSON says it is)');
  t.ok(sameValue({ a: NaN }, { a: NaN }));
  t.notOk(sameValue({ a: Infinity }, { a: null }), 'Infinity is not null (JSON says it is)');
  t.notOk(sameValue(new Map([['a', 1]]), new Map([['a', 2]])), 'Map contents count (JSON writes {})');
  t.ok(sameValue(new Map([['a', { x: 1 }]]), new Map([['a', { x: 1 }]])));
  t.notOk(sameValue([1, 2], [1, 2, 3]));
  t.notOk(sameValue([1], { 0: 1 }), 'an array is not an object');
  t.ok(sameValue(/a+/i, /a+/i));
  t.notOk(sameValue(/a+/i, /a+/g));
  t.notOk(sameValue(0, -0), 'the same as Object.is');
});
