import t from 'tap';
import { StatsStore } from '../../../../proxy/observe/stats';
import { StatsExporter, StatsMerger } from '../../../../proxy/workers/stats-exchange';
import { mergeClusters } from '../../../../proxy/workers/pool';
import type { ClusterStatus } from '../../../../proxy/admin/context';

t.test('workers report incrementally; the primary sums counters and active gauges, takes the max of the rest', async (t) => {
  const w1 = new StatsStore();
  const w2 = new StatsStore();
  const e1 = new StatsExporter(w1);
  const e2 = new StatsExporter(w2);
  w1.counter('cluster.a.upstream_cx_total').add(3);
  w2.counter('cluster.a.upstream_cx_total').add(4);
  w1.gauge('cluster.a.upstream_cx_active').set(2);
  w2.gauge('cluster.a.upstream_cx_active').set(5);
  w1.gauge('cluster.a.membership_total').set(3);
  w2.gauge('cluster.a.membership_total').set(3);
  w1.histogram('cluster.a.upstream_rq_time').record(7);
  w2.histogram('cluster.a.upstream_rq_time').record(700);
  const primary = new StatsStore();
  const m = new StatsMerger(primary);
  const r1 = e1.report();
  t.equal(r1.added.length, 4, 'first report names every stat');
  m.merge(new Map([[0, r1], [1, e2.report()]]));
  t.equal(primary.counter('cluster.a.upstream_cx_total').value, 7);
  t.equal(primary.gauge('cluster.a.upstream_cx_active').value, 7, '_active gauges add up across workers');
  t.equal(primary.gauge('cluster.a.membership_total').value, 3, 'membership is the same in every worker, not summed');
  const h = primary.histogram('cluster.a.upstream_rq_time');
  t.equal(h.count, 2);
  t.equal(h.sum, 707);

  w1.counter('cluster.a.upstream_cx_total').inc();
  w1.counter('cluster.b.upstream_cx_total').inc();
  const again = e1.report();
  t.same(again.added.map(([n, k]) => [n, k]), [['cluster.b.upstream_cx_total', 'counter']], 'later reports name only new stats');
  m.merge(new Map([[0, again], [1, e2.report()]]));
  t.equal(primary.counter('cluster.a.upstream_cx_total').value, 8, 'merge replaces, it does not accumulate across gathers');
  t.equal(primary.counter('cluster.b.upstream_cx_total').value, 1);
  t.ok(primary.counter('cluster.b.upstream_cx_total').used, 'used flags come along');
});

t.test('Prometheus labels of a worker stat survive the merge (the primary never saw the scope)', async (t) => {
  const w = new StatsStore();
  w.registerScope('outbound|80||dotted.example.com');
  w.counter('cluster.outbound|80||dotted.example.com.upstream_cx_total').inc();
  const primary = new StatsStore();
  new StatsMerger(primary).merge(new Map([[0, new StatsExporter(w).report()]]));
  t.same(primary.counter('cluster.outbound|80||dotted.example.com.upstream_cx_total').prom, {
    name: 'envoy_cluster_upstream_cx_total',
    labels: [['cluster_name', 'outbound|80||dotted.example.com']],
  });
});

t.test('a restarted worker describes its stats again', async (t) => {
  const primary = new StatsStore();
  const m = new StatsMerger(primary);
  const w = new StatsStore();
  w.counter('x').add(2);
  m.merge(new Map([[0, new StatsExporter(w).report()]]));
  m.forget(0);
  const fresh = new StatsStore();
  fresh.counter('x').add(1);
  m.merge(new Map([[0, new StatsExporter(fresh).report()]]));
  t.equal(primary.counter('x').value, 3, 'described again, and added to what its predecessor counted (retired-counters.test.ts)');
});

t.test('/clusters across workers: host counters add up, health is the AND', async (t) => {
  const host = (cx: number, healthy: boolean) => ({ address: '10.0.0.1', port: 80, hostname: '', healthy, weight: 1, locality: '', stats: { cx_active: 0, cx_connect_fail: 0, cx_total: cx, rq_active: 0, rq_error: 0, rq_success: cx, rq_timeout: 0, rq_total: cx } });
  const c = (cx: number, healthy: boolean): ClusterStatus => ({ name: 'outbound|80||a', addedViaApi: true, circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, maxRetries: 1 }, hosts: [host(cx, healthy)] });
  const merged = mergeClusters([[c(2, true)], [c(3, false)]]);
  t.equal(merged.length, 1);
  t.equal(merged[0]!.hosts[0]!.stats.cx_total, 5);
  t.equal(merged[0]!.hosts[0]!.healthy, false);
});
