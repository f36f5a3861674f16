import t from 'tap';
import { ClusterStats, HttpStats, ListenerStats, StatsStore } from '../../../../proxy/observe/stats';

t.test('cluster stats carry Envoy names and Istio tag extraction', async (t) => {
  const store = new StatsStore();
  const c = new ClusterStats(store, 'outbound|443||edition.cnn.com');
  c.upstream_cx_total.inc();
  c.upstream_cx_total.inc();
  t.equal(store.get('cluster.outbound|443||edition.cnn.com.upstream_cx_total')?.kind, 'counter');
  t.equal(c.upstream_cx_total.value, 2);
  t.same(c.upstream_cx_total.prom, { name: 'envoy_cluster_upstream_cx_total', labels: [['cluster_name', 'outbound|443||edition.cnn.com']] });
  c.responseCode(301);
  c.responseCode(301);
  t.equal(store.counter('cluster.outbound|443||edition.cnn.com.upstream_rq_301').value, 2);
  t.equal(store.counter('cluster.outbound|443||edition.cnn.com.upstream_rq_3xx').value, 2);
  t.same(store.counter('cluster.outbound|443||edition.cnn.com.upstream_rq_3xx').prom, {
    name: 'envoy_cluster_upstream_rq',
    labels: [['cluster_name', 'outbound|443||edition.cnn.com'], ['response_code_class', '3xx']],
  });
  t.equal(store.counter('cluster.outbound|443||edition.cnn.com.ssl.handshake').prom.name, 'envoy_cluster_ssl_handshake', 'dotted stat names after the scope');
});

t.test('a second bundle for the same cluster shares the counters (stats survive reloads)', async (t) => {
  const store = new StatsStore();
  new ClusterStats(store, 'outbound|80||a').upstream_cx_total.inc();
  t.equal(new ClusterStats(store, 'outbound|80||a').upstream_cx_total.value, 1);
});

t.test('listener and HTTP scopes: `:` becomes `_` and the address is a label', async (t) => {
  const store = new StatsStore();
  const l = new ListenerStats(store, '0.0.0.0:15001');
  t.equal(l.downstream_cx_total.name, 'listener.0.0.0.0_15001.downstream_cx_total');
  t.same(l.downstream_cx_total.prom.labels, [['listener_address', '0.0.0.0_15001']]);
  const h = new HttpStats(store, 'outbound_0.0.0.0_80');
  h.responseCode(404);
  t.equal(store.counter('http.outbound_0.0.0.0_80.downstream_rq_4xx').value, 1);
});

t.test('all() is sorted by name and follows additions; counters reset, gauges do not', async (t) => {
  const store = new StatsStore();
  store.counter('b').inc();
  store.gauge('a').set(5);
  t.same(store.all().map((s) => s.name), ['a', 'b']);
  store.counter('aa').inc();
  t.same(store.all().map((s) => s.name), ['a', 'aa', 'b'], 'a new stat invalidates the cached order');
  store.resetCounters();
  t.equal(store.counter('b').value, 0);
  t.equal(store.gauge('a').value, 5);
  t.throws(() => store.gauge('b'), /already exists as a counter/);
});
