// The "carried, not acted on" table: each row warns (CFG_WARN_NOT_ACTED_ON) where the field is used,
// with the path as written, and README.md lists exactly the table's rows.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NOT_ACTED_ON } from '../../../../config/resources/not-acted-on';
import { doc, load } from './_load';

const README = fs.readFileSync(path.resolve(__dirname, '../../../../../README.md'), 'utf8');

/** A resource of `kind` that uses the field `pattern` names (`**` as the shortest route that makes sense). */
const SAMPLES: Readonly<Record<string, string>> = {
  'spec.**.tunnel': doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {tunnel: {targetHost: b.example.com, targetPort: 8080}}'),
  'spec.**.proxyProtocol': doc('DestinationRule', 'd', '  host: a.example.com\n  subsets: [{name: v1, trafficPolicy: {proxyProtocol: {version: V2}}}]'),
  'spec.**.tls.credentialName': doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: SIMPLE, credential_name: c}}]}'),
  'spec.**.connectionPool.tcp.maxConnectionDuration': doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {connectionPool: {tcp: {maxConnectionDuration: 1h}}}'),
  'spec.**.connectionPool.http.idleTimeout': doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {connectionPool: {http: {idleTimeout: 30s}}}'),
  'spec.**.requestPrincipals': doc('AuthorizationPolicy', 'a', '  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]', 'security.istio.io/v1'),
  'spec.**.notRequestPrincipals': doc('AuthorizationPolicy', 'a', '  rules: [{from: [{source: {notRequestPrincipals: ["*"]}}]}]', 'security.istio.io/v1'),
  'spec.**.remoteIpBlocks': doc('AuthorizationPolicy', 'a', '  rules: [{from: [{source: {remoteIpBlocks: [198.18.0.0/16]}}]}]', 'security.istio.io/v1'),
  'spec.**.notRemoteIpBlocks': doc('AuthorizationPolicy', 'a', '  rules: [{from: [{source: {notRemoteIpBlocks: [198.18.0.0/16]}}]}]', 'security.istio.io/v1beta1'),
  'spec.targetRef': doc('AuthorizationPolicy', 'a', '  targetRef: {kind: Gateway, name: g}', 'security.istio.io/v1'),
  'spec.targetRefs': doc('AuthorizationPolicy', 'a', '  targetRefs: [{kind: Gateway, name: g}]', 'security.istio.io/v1'),
  'spec.provider': doc('AuthorizationPolicy', 'a', '  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]', 'security.istio.io/v1'),
  'spec.workloadSelector': doc('ServiceEntry', 's', '  hosts: [a.example.com]\n  resolution: STATIC\n  workloadSelector: {labels: {app: a}}'),
};

t.test('every row warns where its field is used, once, with the path as written', async (t) => {
  for (const row of NOT_ACTED_ON) {
    const sample = SAMPLES[row.pattern];
    t.ok(sample !== undefined, `a sample uses ${row.pattern}`);
    if (sample === undefined) continue;
    const r = load(sample);
    const notices = r.messages.filter((m) => m.code === 'CFG_WARN_NOT_ACTED_ON');
    t.equal(notices.length, 1, `${row.pattern}: one notice`);
    t.equal(notices[0]?.level, 'warning');
    t.match(notices[0]?.text ?? '', `is carried but not acted on: ${row.why}`, row.pattern);
    t.notOk(r.messages.some((m) => m.level === 'error'), `${row.pattern}: the sample is otherwise valid`);
  }
  const snake = load(SAMPLES['spec.**.tls.credentialName']!).messages.find((m) => m.code === 'CFG_WARN_NOT_ACTED_ON');
  t.match(snake?.text ?? '', 'spec.trafficPolicy.portLevelSettings[0].tls.credential_name: credentialName is carried but not acted on');
});

t.test('a field that is not used gets no notice', async (t) => {
  t.same(load(doc('DestinationRule', 'd', '  host: a.example.com\n  trafficPolicy: {connectionPool: {tcp: {maxConnections: 3}}}')).messages, []);
});

t.test('README lists exactly the rows of the table', async (t) => {
  const start = README.indexOf('plane does not act on');
  t.ok(start >= 0, 'README has the section');
  const section = README.slice(start, README.indexOf('Every other kind', start));
  for (const row of NOT_ACTED_ON) t.ok(section.includes('`' + row.kind + ' ' + row.pattern + '`'), `README names ${row.kind} ${row.pattern}`);
  const listed = [...section.matchAll(/`((?:ServiceEntry|Gateway|VirtualService|DestinationRule|AuthorizationPolicy) spec[^`]*)`/g)].map((m) => m[1]);
  t.same(listed.sort(), NOT_ACTED_ON.map((r) => `${r.kind} ${r.pattern}`).sort(), 'and nothing else');
});
