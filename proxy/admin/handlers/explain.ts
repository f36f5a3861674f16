// GET /explain?url=URL | ?sni=HOST&port=N | ?tcp=IP:PORT [&format=json]: `sluice explain` on the
// live snapshot, with endpoint health and per-host counters from the running cluster manager, so
// the answer reflects what this proxy would do right now (DNS results, ejected hosts included).

import type { ClusterStatus } from '../context';
import { EXPLAIN_USAGE, ExplainTargetError, explainDetailed, parseExplainTarget } from '../../explain';
import { json, text, wantsJson, type Endpoint } from '../endpoint';

function param(query: URLSearchParams, name: string): string | undefined {
  return query.get(name) ?? undefined;
}

export const explainEndpoints: readonly Endpoint[] = [
  {
    path: '/explain',
    mutates: false,
    help: 'the decision chain for a request on the live config: ?url=URL | ?sni=HOST&port=N | ?tcp=IP:PORT (&format=json)',
    handle(env, query) {
      let target;
      try {
        target = parseExplainTarget({ url: param(query, 'url'), sni: param(query, 'sni'), port: param(query, 'port'), tcp: param(query, 'tcp'), inbound: param(query, 'inbound') });
      } catch (err) {
        if (err instanceof ExplainTargetError) return text(`${err.message}\nusage: ${EXPLAIN_USAGE}\n`, 400);
        throw err;
      }
      if (target === null) return text(`usage: ${EXPLAIN_USAGE}\n`, 400);
      const snap = env.ctx.snapshot();
      if (snap === null) return text('no config loaded yet\n', 503);
      // One read of the live clusters per call (each call copies the hosts' counters).
      const live = new Map<string, ClusterStatus>();
      for (const c of env.ctx.clusters()) live.set(c.name, c);
      const e = explainDetailed(snap, target, (name) => live.get(name));
      return wantsJson(query) ? json(e) : text(e.lines.join('\n') + '\n');
    },
  },
];
