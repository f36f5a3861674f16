// A dead worker's counters stay in the primary's totals (StatsMerger.forget), so its replacement,
// starting from zero, never makes a counter go backwards; its gauges go (what it held is gone).

import t from 'tap';
import { StatsStore } from '../../../../proxy/observe/stats';
import { StatsExporter, StatsMerger } from '../../../../proxy/workers/stats-exchange';

t.test('a replaced worker keeps its counters and histograms, not its gauges', async (t) => {
  const w0 = new StatsStore();
  const w1 = new StatsStore();
  const primary = new StatsStore();
  const m = new StatsMerger(primary);
  w0.counter('cluster.a.upstream_rq_total').add(10);
  w1.counter('cluster.a.upstream_rq_total').add(3);
  w0.gauge('cluster.a.upstream_cx_active').set(4);
  w0.histogram('cluster.a.upstream_rq_time').record(5);
  const e0 = new StatsExporter(w0);
  const e1 = new StatsExporter(w1);
  m.merge(new Map([[0, e0.report()], [1, e1.report()]]));
  t.equal(primary.counter('cluster.a.upstream_rq_total').value, 13);

  // worker 0 dies; its replacement starts from nothing and counts 1
  m.forget(0);
  const replacement = new StatsStore();
  replacement.counter('cluster.a.upstream_rq_total').add(1);
  m.merge(new Map([[0, new StatsExporter(replacement).report()], [1, e1.report()]]));
  t.equal(primary.counter('cluster.a.upstream_rq_total').value, 14, '10 kept + 1 new + 3 of the other worker: not 4');
  t.equal(primary.histogram('cluster.a.upstream_rq_time').count, 1, 'histogram samples kept');
  t.equal(primary.gauge('cluster.a.upstream_cx_active').value, 0, 'its active connections are gone with it');

  // a merge in which no live worker has the stat still shows the retired value
  m.merge(new Map([[1, e1.report()]]));
  t.equal(primary.counter('cluster.a.upstream_rq_total').value, 13, 'retired 10 + worker 1 3');

  m.resetRetired();
  m.merge(new Map([[1, e1.report()]]));
  t.equal(primary.counter('cluster.a.upstream_rq_total').value, 3, '/reset_counters clears what dead workers counted');
});

t.test('forgetting a worker that never reported changes nothing', async (t) => {
  const primary = new StatsStore();
  const m = new StatsMerger(primary);
  m.forget(7);
  const w = new StatsStore();
  w.counter('x_total').add(2);
  m.merge(new Map([[0, new StatsExporter(w).report()]]));
  t.equal(primary.counter('x_total').value, 2);
});
