// The chaos soak's short variant (test/soak/: `npm run soak` runs it for 10 minutes): ~25 s of random
// TCP and HTTP transfers through a capturing sidecar and an egress gateway (both --concurrency 2),
// while the config is rewritten every second (valid and invalid in turn), a worker is SIGKILLed
// every 8 s, the sink resets connections and one upstream drops every SYN.

import t from 'tap';
import { requireRoot } from './harness/prereqs';
import { reusePortSupported } from '../../proxy/listener/listen-options';
import { checksOf, DEFAULT_RSS_BOUND, formatReport, runSoak } from '../soak/soak';

// ~25 s of traffic plus start-up, a hang limit of 30 s and the end checks: above .taprc's 120 s on a loaded box.
t.setTimeout(240_000);

t.test('chaos soak, short: no corrupted or lost byte, every failure expected, counters monotonic, fds and RSS bounded', async (t) => {
  if (!(await requireRoot(t))) return;
  const seed = Number(process.env['SOAK_SEED'] ?? Date.now() % 100000);
  const report = await runSoak(t, { durationMs: 25_000, concurrency: 4, seed, reloadEveryMs: 1000, killEveryMs: 8000, hangMs: 30_000, rssBoundBytes: DEFAULT_RSS_BOUND, log: (s) => t.comment(s) });
  t.comment(formatReport(report));
  const c = checksOf(report);
  // Node 20 has no reusePort: the primary accepts every connection and hands it to a worker, and
  // one it is handing over as that worker dies is never handed to another nor closed (Node's
  // RoundRobinHandle waits for an ack that never comes): the client hangs and the primary keeps
  // the fd; lines and connections go missing around kills too (README, Chaos soak). Failures
  // near a kill are a todo there, asserted where workers bind themselves; all others always.
  const rrLimit = reusePortSupported() ? undefined : 'Node 20 cluster round-robin strands a connection handed to a dying worker (README, Chaos soak)';
  const unexpected = report.judgement.verdicts.filter((v) => v.category === 'unexpected');
  const far = unexpected.filter((v) => !v.nearKill);
  const near = unexpected.filter((v) => v.nearKill);
  for (const v of unexpected) t.comment(`unexpected${v.nearKill ? ' (near a worker kill)' : ''}: ${v.result.id} ${v.result.target} ${v.result.behavior}: ${v.reason}`);
  // Two known, open causes of failures away from kills are split off and reported as todos of
  // their own, so that any other unexpected failure still fails the suite (the seed is new each
  // run, so which of them a short run meets varies):
  // - a missing TCP line where the same proxy logged lines no transfer owns: the wrong client port
  //   below (the line exists, under another port);
  // - an upstream reset that the proxy next to the sink logged as a clean end ('-'): libuv reports
  //   a reset that arrives with bytes unread as EOF (its POLLHUP short-cut), so that proxy closes
  //   instead of resetting and logs no UC, where Envoy would log UC (README, Chaos soak).
  const unowned = (proxy: string): boolean => report.judgement.linesTotal[proxy as 'sidecar' | 'gateway'] > report.judgement.linesMatched[proxy as 'sidecar' | 'gateway'];
  const wrongPortLine = (v: (typeof far)[number]): boolean => {
    const m = /^(sidecar|gateway): no access-log line$/.exec(v.reason);
    return m !== null && v.result.target.startsWith('tcp') && unowned(m[1]!);
  };
  const resetReadAsEof = (v: (typeof far)[number]): boolean => v.result.behavior === 'upstream-reset' && v.result.target.startsWith('tcp') && /^upstream-reset; (sidecar|gateway): flags - code 0 /.test(v.reason);
  const knownPort = far.filter(wrongPortLine);
  const knownEof = far.filter((v) => !wrongPortLine(v) && resetReadAsEof(v));
  const other = far.filter((v) => !wrongPortLine(v) && !resetReadAsEof(v));
  t.equal(other.length, 0, 'every failure away from worker kills is an expected one, with its flag, and every request has its access-log line per proxy');
  t.equal(knownPort.length, 0, 'no TCP transfer lacks its line (away from kills)', knownPort.length > 0 ? { todo: 'wrong client port in some captured TCP access-log lines (README, Chaos soak)' } : {});
  t.equal(knownEof.length, 0, 'an upstream reset is logged UC by the proxy next to the sink', knownEof.length > 0 ? { todo: 'a reset read as EOF (libuv POLLHUP short-cut) ends as a clean close, no UC (README, Chaos soak)' } : {});
  t.equal(near.length, 0, 'no unexpected failure near a worker kill either (hangs, lost lines)', rrLimit !== undefined && near.length > 0 ? { todo: rrLimit } : {});
  t.equal(c.hung, 0, 'no transfer hung', rrLimit !== undefined && c.hung > 0 && c.hung === near.filter((v) => v.result.error === 'hang').length ? { todo: rrLimit } : {});
  t.ok(report.results.length > 50, `transfers ran (${report.results.length})`);
  t.ok(report.kills.length >= 2, `workers were killed (${report.kills.length})`);
  t.ok(report.results.some((r) => r.complete && r.down >= 1024 * 1024), 'some transfers of a MiB or more completed');
  t.equal(c.corrupted, 0, 'no transfer has a byte that differs from what was sent');
  // Known and open: a few captured TCP lines (~1% in the 10-minute soak) name a client port no
  // connection had (e.g. :1899) as DOWNSTREAM_REMOTE_ADDRESS, so they match no transfer.
  t.ok(c.accessLogExact, 'every access-log line belongs to one transfer', c.accessLogExact ? {} : { todo: 'wrong client port in some captured TCP access-log lines (README, Chaos soak)' });
  t.equal(c.counterRegressions, 0, 'no counter went backwards (worker kills included)');
  // Known and open (see the README): after worker kills under traffic a few fds stay open in the
  // primary and the replacement workers although no connection is reported open.
  t.ok(c.fdsBack, 'fds back to the baseline plus the connections the proxies report open', c.fdsBack ? {} : { todo: 'fds left after worker kills under traffic (README, Chaos soak)' });
  t.ok(c.rssBounded, `RSS under ${DEFAULT_RSS_BOUND / 1024 / 1024} MiB per proxy`);
  t.ok(report.proxies.sidecar.configRejected > 0 && report.proxies.sidecar.configApplied > 0, 'reloads were applied and rejected');
});
