// The egress decision on records, and the bound on per-host denial counters.

import t from 'tap';
import { AccessLogRecord } from '../../../../proxy/observe/access-log-record';
import { decide, DeniedHosts, requestedHost } from '../../../../proxy/observe/egress-decision';
import { StatsStore } from '../../../../proxy/observe/stats';
import { renderPrometheus } from '../../../../proxy/observe/render-stats';

function record(f: Partial<AccessLogRecord>): AccessLogRecord {
  return Object.assign(new AccessLogRecord(0, 0), f);
}

t.test('decide: the REGISTRY_ONLY catch-all is deny in enforce, passthrough is would_deny in report', async (t) => {
  const enforce = { registryOnly: true, mode: 'enforce' as const };
  const report = { registryOnly: true, mode: 'report' as const };
  for (const f of [{ upstreamCluster: 'BlackHoleCluster' }, { routeName: 'block_all' }, { responseCodeDetails: 'connect_host_not_in_registry' }]) {
    const r = record(f);
    decide(r, enforce);
    t.same([r.policyDecision, r.policyReason], ['deny', 'not_in_registry'], JSON.stringify(f));
  }
  const pass = record({ upstreamCluster: 'PassthroughCluster', routeName: 'allow_any' });
  decide(pass, enforce);
  t.equal(pass.policyDecision, null, 'enforce: passthrough cannot happen under REGISTRY_ONLY, nothing to say');
  decide(pass, report);
  t.same([pass.policyDecision, pass.policyReason], ['would_deny', 'not_in_registry'], 'report: passthrough would have been denied');
  const allowAny = record({ upstreamCluster: 'PassthroughCluster' });
  decide(allowAny, { registryOnly: false, mode: 'report' });
  t.equal(allowAny.policyDecision, null, 'ALLOW_ANY configured: passthrough is allowed');
  const authz = record({ upstreamCluster: 'PassthroughCluster', policyDecision: 'deny', policyReason: 'rbac_access_denied' });
  decide(authz, report);
  t.equal(authz.policyReason, 'rbac_access_denied', 'a verdict already made (AuthorizationPolicy) is kept');
});

t.test('requestedHost: Host, else SNI, else the original destination', async (t) => {
  t.equal(requestedHost(record({ authority: 'a.example:8080', requestedServerName: 'b.example' })), 'a.example');
  t.equal(requestedHost(record({ authority: '[2001:db8::1]:443' })), '2001:db8::1');
  t.equal(requestedHost(record({ requestedServerName: 'b.example', downstreamLocalAddress: '198.18.0.1:443' })), 'b.example');
  t.equal(requestedHost(record({ downstreamLocalAddress: '198.18.0.1:443' })), '198.18.0.1');
});

t.test('DeniedHosts: the first N hosts get a counter, the rest one "other" bucket', async (t) => {
  const stats = new StatsStore();
  const d = new DeniedHosts(stats, 2);
  d.count('deny', 'a.example');
  d.count('deny', 'b.example');
  d.count('deny', 'c.example');
  d.count('deny', 'd.example');
  d.count('deny', 'a.example');
  d.count('would_deny', 'e.example');
  const v = (n: string): number | undefined => {
    const s = stats.get(n);
    return s === undefined || s.kind === 'histogram' ? undefined : s.value;
  };
  t.equal(v('egress_policy.denied.host.a.example'), 2);
  t.equal(v('egress_policy.denied.host.b.example'), 1);
  t.equal(v('egress_policy.denied.host.c.example'), undefined, 'past the bound: no own counter');
  t.equal(v('egress_policy.denied.host.other'), 2, 'c and d in the other bucket');
  t.equal(v('egress_policy.denied'), 5, 'the total counts all');
  t.equal(v('egress_policy.would_deny.host.other'), 1, 'the bound counts buckets of both decisions together');
  const prom = renderPrometheus(stats).toString();
  t.match(prom, /^envoy_egress_policy_host_denied\{host="other"\} 2$/m);
  t.match(prom, /^envoy_egress_policy_host_denied\{host="a\.example"\} 2$/m);
});
