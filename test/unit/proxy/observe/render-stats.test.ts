import t from 'tap';
import client from 'prom-client';
import { ClusterStats, ListenerStats, StatsStore } from '../../../../proxy/observe/stats';
import {
  HistogramIntervals,
  SUPPORTED_QUANTILES,
  quantilesOf,
  renderPrometheus as renderPrometheusBuffer,
  renderStatsJson as renderStatsJsonBuffer,
  renderStatsText as renderStatsTextBuffer,
} from '../../../../proxy/observe/render-stats';
import { parsePrometheus } from './prom-parse';

const CNN = 'outbound|443||edition.cnn.com';

// The renderers return Buffers (see OutputChunks); the assertions read text.
const renderStatsText = (...a: Parameters<typeof renderStatsTextBuffer>): string => renderStatsTextBuffer(...a).toString();
const renderStatsJson = (...a: Parameters<typeof renderStatsJsonBuffer>): string => renderStatsJsonBuffer(...a).toString();
const renderPrometheus = (...a: Parameters<typeof renderPrometheusBuffer>): string => renderPrometheusBuffer(...a).toString();

function storeWithCnn(): { store: StatsStore; cnn: ClusterStats } {
  const store = new StatsStore();
  const cnn = new ClusterStats(store, CNN);
  cnn.upstream_cx_total.add(2);
  cnn.upstream_cx_active.set(1);
  cnn.responseCode(301);
  return { store, cnn };
}

t.test('text: a cluster counter prints as Envoy prints it', async (t) => {
  const { store } = storeWithCnn();
  const lines = renderStatsText(store).split('\n');
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_cx_total: 2'));
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_cx_active: 1'));
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_rq_301: 1'));
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_rq_3xx: 1'));
  t.ok(lines.includes('cluster.outbound|443||edition.cnn.com.upstream_cx_connect_fail: 0'), 'unused counters are listed without usedonly');
});

t.test('text: counters and gauges co-mingled in name order, then histograms', async (t) => {
  const { store } = storeWithCnn();
  new ListenerStats(store, '0.0.0.0:15001').downstream_cx_total.inc();
  const lines = renderStatsText(store).trimEnd().split('\n');
  const firstHistogram = lines.findIndex((l) => l.endsWith('No recorded values') || / P0\(/.test(l));
  t.ok(firstHistogram > 0);
  const scalars = lines.slice(0, firstHistogram).map((l) => l.slice(0, l.lastIndexOf(': ')));
  t.same(scalars, [...scalars].sort(), 'counters and gauges sorted together');
  t.ok(scalars.indexOf('cluster.outbound|443||edition.cnn.com.upstream_cx_active') < scalars.indexOf('cluster.outbound|443||edition.cnn.com.upstream_cx_total'), 'gauge sorted among counters');
  t.ok(scalars.includes('listener.0.0.0.0_15001.downstream_cx_total'), '":" replaced by "_"');
  const hist = lines.slice(firstHistogram);
  t.ok(hist.every((l) => l.endsWith('No recorded values') || / P0\(/.test(l)), 'only histograms after the first histogram');
  t.ok(hist.includes('cluster.outbound|443||edition.cnn.com.upstream_cx_connect_ms: No recorded values'));
});

t.test('text: filter is a partial regex match and combines with usedonly', async (t) => {
  const { store } = storeWithCnn();
  new ClusterStats(store, 'outbound|80||edition.cnn.com').upstream_cx_total.inc();
  const cxTotal = renderStatsText(store, { filter: /cx_total/, usedOnly: false }).trimEnd().split('\n');
  t.same(cxTotal, ['cluster.outbound|443||edition.cnn.com.upstream_cx_total: 2', 'cluster.outbound|80||edition.cnn.com.upstream_cx_total: 1']);
  const anchored = renderStatsText(store, { filter: /^cluster\.outbound\|80\|\|edition\.cnn\.com\.upstream_cx_total$/, usedOnly: false }).trimEnd().split('\n');
  t.same(anchored, ['cluster.outbound|80||edition.cnn.com.upstream_cx_total: 1']);
  const used = renderStatsText(store, { filter: /443/, usedOnly: true }).trimEnd().split('\n');
  t.same(used, [
    'cluster.outbound|443||edition.cnn.com.upstream_cx_active: 1',
    'cluster.outbound|443||edition.cnn.com.upstream_cx_total: 2',
    'cluster.outbound|443||edition.cnn.com.upstream_rq_301: 1',
    'cluster.outbound|443||edition.cnn.com.upstream_rq_3xx: 1',
  ]);
  t.equal(renderStatsText(store, { filter: /no-such-stat/, usedOnly: false }), '');
});

t.test('a used counter stays listed by usedonly after reset_counters, at 0 (Envoy keeps the used flag)', async (t) => {
  const { store } = storeWithCnn();
  store.resetCounters();
  const used = renderStatsText(store, { filter: /upstream_cx_total/, usedOnly: true });
  t.equal(used, 'cluster.outbound|443||edition.cnn.com.upstream_cx_total: 0\n');
  t.match(renderStatsText(store, { filter: /upstream_cx_active/, usedOnly: false }), 'upstream_cx_active: 1\n', 'gauges are not reset');
});

t.test('quantiles interpolate inside Envoy buckets', async (t) => {
  const store = new StatsStore();
  const h = store.histogram('cluster.x.upstream_rq_time');
  h.record(3); // bucket (1, 5]
  const out: number[] = [];
  quantilesOf(h.counts, h.count, out);
  t.equal(out[0], 1, 'P0 = lower bound of the only bucket');
  t.equal(out[2], 3, 'P50 = middle of (1,5]');
  t.equal(out[SUPPORTED_QUANTILES.length - 1], 5, 'P100 = upper bound');
  quantilesOf(h.counts, 0, out);
  t.ok(out.every(Number.isNaN), 'no samples -> NaN');
  for (let i = 0; i < 3; i++) h.record(700); // (500, 1000]
  quantilesOf(h.counts, h.count, out);
  t.equal(out[1], 5, 'P25 of 4 samples ends the first bucket');
  t.ok(out[2]! > 500 && out[2]! <= 1000, 'P50 falls in (500,1000]');
  h.record(1e9); // above every bound: reported at the last bound
  quantilesOf(h.counts, h.count, out);
  t.equal(out[SUPPORTED_QUANTILES.length - 1], 3600000);
});

t.test('text: histogram line with interval and cumulative values', async (t) => {
  const store = new StatsStore();
  const h = store.histogram('cluster.x.upstream_rq_time');
  h.record(3);
  const intervals = new HistogramIntervals(5000, 0); // renders at time 0 never rotate by themselves
  t.equal(
    renderStatsText(store, undefined, null),
    'cluster.x.upstream_rq_time: P0(nan,1) P25(nan,2) P50(nan,3) P75(nan,4) P90(nan,4.6) P95(nan,4.8) P99(nan,4.96) P99.5(nan,4.98) P99.9(nan,4.996) P100(nan,5)\n',
  );
  intervals.rotate(store); // the interval that just ended holds the one sample
  h.record(3);
  h.record(3);
  const line = renderStatsText(store, undefined, intervals, 0);
  t.equal(line, 'cluster.x.upstream_rq_time: P0(1,1) P25(2,2) P50(3,3) P75(4,4) P90(4.6,4.6) P95(4.8,4.8) P99(4.96,4.96) P99.5(4.98,4.98) P99.9(4.996,4.996) P100(5,5)\n');
  intervals.rotate(store); // now the interval holds the two later samples; cumulative has three
  t.match(renderStatsText(store, undefined, intervals, 0), 'P50(3,3)');
  intervals.rotate(store); // an empty interval
  t.match(renderStatsText(store, undefined, intervals, 0), 'P0(nan,1)');
  h.record(700);
  t.match(renderStatsText(store, undefined, intervals, 4999), 'P0(nan,1)', 'interval not over yet');
  t.match(renderStatsText(store, undefined, intervals, 5000), 'P0(500,1) ', 'a render after the interval closes it');
  t.match(renderStatsText(store, undefined, intervals, 5001), 'P0(500,1) ', 'and the next render within it shows the same');
});

t.test('json: Envoy shape with stats then one histograms entry', async (t) => {
  const { store, cnn } = storeWithCnn();
  cnn.upstream_cx_connect_ms.record(3);
  const doc = JSON.parse(renderStatsJson(store, { filter: /upstream_cx_(total|active|connect_ms|length_ms)$/, usedOnly: false }));
  t.same(Object.keys(doc), ['stats']);
  t.same(doc.stats.slice(0, 2), [
    { name: 'cluster.outbound|443||edition.cnn.com.upstream_cx_active', value: 1 },
    { name: 'cluster.outbound|443||edition.cnn.com.upstream_cx_total', value: 2 },
  ]);
  const last = doc.stats[doc.stats.length - 1];
  t.same(last.histograms.supported_quantiles, [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
  const names = last.histograms.computed_quantiles.map((q: { name: string }) => q.name);
  t.same(names, ['cluster.outbound|443||edition.cnn.com.upstream_cx_connect_ms', 'cluster.outbound|443||edition.cnn.com.upstream_cx_length_ms']);
  const connect = last.histograms.computed_quantiles[0].values;
  t.equal(connect.length, 10);
  t.same(connect[2], { interval: null, cumulative: 3 });
  t.same(last.histograms.computed_quantiles[1].values[0], { interval: null, cumulative: null }, 'no data -> null');
  t.equal(doc.stats.length, 3);
  t.same(JSON.parse(renderStatsJson(store, { filter: /nothing/, usedOnly: false })), { stats: [] });
});

t.test('prometheus: valid exposition, counters then gauges then histograms, Istio labels', async (t) => {
  const { store, cnn } = storeWithCnn();
  cnn.upstream_cx_connect_ms.record(3);
  cnn.upstream_cx_connect_ms.record(700);
  new ClusterStats(store, 'outbound|80||edition.cnn.com').upstream_cx_total.inc();
  const text = renderPrometheus(store);
  t.ok(text.split('\n').includes('envoy_cluster_upstream_cx_total{cluster_name="outbound|443||edition.cnn.com"} 2'));
  const families = parsePrometheus(text);
  const types = families.map((f) => f.type);
  const firstGauge = types.indexOf('gauge');
  const firstHistogram = types.indexOf('histogram');
  t.ok(firstGauge > 0 && firstHistogram > firstGauge);
  t.ok(types.slice(0, firstGauge).every((x) => x === 'counter') && types.slice(firstGauge, firstHistogram).every((x) => x === 'gauge') && types.slice(firstHistogram).every((x) => x === 'histogram'));
  for (const group of [types.slice(0, firstGauge), types.slice(firstGauge, firstHistogram)]) t.ok(group.length > 0);
  const names = families.map((f) => f.name);
  t.same(names.slice(0, firstGauge), [...names.slice(0, firstGauge)].sort(), 'groups sorted by name');
  const cxTotal = families.find((f) => f.name === 'envoy_cluster_upstream_cx_total')!;
  t.same(cxTotal.samples.map((s) => [s.labels['cluster_name'], s.value]), [['outbound|443||edition.cnn.com', 2], ['outbound|80||edition.cnn.com', 1]], 'one family, one series per cluster');
  const rq = families.find((f) => f.name === 'envoy_cluster_upstream_rq')!;
  t.same(rq.samples.map((s) => s.labels), [
    { cluster_name: CNN, response_code: '301' },
    { cluster_name: CNN, response_code_class: '3xx' },
  ]);
  const connect = families.find((f) => f.name === 'envoy_cluster_upstream_cx_connect_ms')!;
  const mine = connect.samples.filter((s) => s.labels['cluster_name'] === CNN);
  const buckets = mine.filter((s) => s.name.endsWith('_bucket'));
  t.equal(buckets.length, 20, '19 bounds + +Inf');
  t.same(buckets.map((b) => b.labels['le']).slice(0, 3), ['0.5', '1', '5']);
  t.equal(buckets.find((b) => b.labels['le'] === '1')!.value, 0);
  t.equal(buckets.find((b) => b.labels['le'] === '5')!.value, 1);
  t.equal(buckets.find((b) => b.labels['le'] === '1000')!.value, 2);
  t.equal(buckets[buckets.length - 1]!.labels['le'], '+Inf');
  t.equal(buckets[buckets.length - 1]!.value, 2);
  for (let i = 1; i < buckets.length; i++) t.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'buckets are cumulative');
  t.equal(mine.find((s) => s.name.endsWith('_sum'))!.value, 703);
  t.equal(mine.find((s) => s.name.endsWith('_count'))!.value, 2);
});

t.test('prometheus: our series line equals prom-client\'s for the same metric', async (t) => {
  const { store } = storeWithCnn();
  const registry = new client.Registry();
  const counter = new client.Counter({ name: 'envoy_cluster_upstream_cx_total', help: 'x', labelNames: ['cluster_name'], registers: [registry] });
  counter.inc({ cluster_name: CNN }, 2);
  const theirs = (await registry.metrics()).split('\n').filter((l) => l.startsWith('envoy_cluster_upstream_cx_total{'));
  const ours = renderPrometheus(store, { filter: /upstream_cx_total$/, usedOnly: false }).split('\n').filter((l) => l.startsWith('envoy_'));
  t.same(ours, theirs);
  t.same(parsePrometheus(await registry.metrics()).map((f) => f.name), ['envoy_cluster_upstream_cx_total'], 'the test parser accepts prom-client output');
});

t.test('prometheus: label values are escaped', async (t) => {
  const store = new StatsStore();
  new ClusterStats(store, 'we"ird\\name').upstream_cx_total.inc();
  const text = renderPrometheus(store, { filter: /upstream_cx_total$/, usedOnly: false });
  t.match(text, 'envoy_cluster_upstream_cx_total{cluster_name="we\\"ird\\\\name"} 1');
  t.same(parsePrometheus(text)[0]!.samples[0]!.labels, { cluster_name: 'we"ird\\name' });
});

t.test('output larger than one chunk is complete and in order', async (t) => {
  const store = new StatsStore();
  for (let i = 0; i < 300; i++) new ClusterStats(store, `outbound|80||host${String(i).padStart(3, '0')}.example.com`).upstream_cx_total.add(i);
  const text = renderStatsText(store, { filter: /upstream_cx_total$/, usedOnly: false });
  t.ok(Buffer.byteLength(renderStatsText(store)) > 65536 * 2, 'several chunks');
  const lines = text.trimEnd().split('\n');
  t.equal(lines.length, 300);
  t.equal(lines[299], 'cluster.outbound|80||host299.example.com.upstream_cx_total: 299');
  const prom = parsePrometheus(renderPrometheus(store));
  t.equal(prom.find((f) => f.name === 'envoy_cluster_upstream_cx_total')!.samples.length, 300);
  const json = JSON.parse(renderStatsJson(store));
  const histogramCount = store.all().filter((x) => x.kind === 'histogram').length;
  t.equal(json.stats.length, store.all().length - histogramCount + 1, 'scalars + one histograms entry');
  t.equal(json.stats[json.stats.length - 1].histograms.computed_quantiles.length, histogramCount);
});

t.test('json: names needing escapes are escaped', async (t) => {
  const store = new StatsStore();
  store.counter('weird."name\\é').inc();
  t.same(JSON.parse(renderStatsJson(store)), { stats: [{ name: 'weird."name\\é', value: 1 }] });
});

t.test('the test parser rejects broken exposition text', async (t) => {
  t.throws(() => parsePrometheus('envoy_x 1\n'), /before its TYPE/);
  t.throws(() => parsePrometheus('# TYPE envoy_x counter\nenvoy_x{a="1} 1\n'), /unterminated|bad/);
  t.throws(() => parsePrometheus('# TYPE envoy_x counter\nenvoy_x 1\nenvoy_x 2\n'), /duplicate/);
  t.throws(() => parsePrometheus('# TYPE a counter\na 1\n# TYPE b counter\nb 1\na{x="1"} 1\n'), /contiguous/);
});
