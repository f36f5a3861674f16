// VirtualService rules beyond the broken fixtures.
import t from 'tap';
import { doc, load, messages } from './_load';

const vs = (spec: string) => messages(doc('VirtualService', 'v', spec));
const P = 'f.yaml:1: VirtualService/v: ';
const ROUTE = 'route: [{destination: {host: a.example.com}}]';

t.test('http actions: directResponse alone is fine; delegate excludes the others', async (t) => {
  t.same(vs(`  hosts: [a.example.com]\n  http: [{directResponse: {status: 503, body: {string: down}}}]`), []);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{delegate: {name: reviews}}]`), [], 'delegate alone');
  t.same(vs(`  hosts: [a.example.com]\n  http: [{delegate: {name: reviews}, ${ROUTE}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].route: root HTTP route must not specify route`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{redirect: {uri: /new}, rewrite: {uri: /x}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].rewrite: HTTP route rule cannot contain both rewrite and redirect`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{directResponse: {status: 99}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].directResponse.status: expected an integer between 200 and 599, got 99`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{redirect: {redirectCode: 200}}]`), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.http[0].redirect.redirectCode: expected an integer between 300 and 399, got 200`,
    `error CFG_ERR_INVALID_FIELD ${P}spec.http[0].redirect: redirect must specify URI, authority, scheme, or port`,
  ]);
});

t.test('a VirtualService without hosts is a delegate: accepted (as Istio), warned when nothing delegates to it', async (t) => {
  const delegateTarget = doc('VirtualService', 'reviews', `  http: [{${ROUTE}}]`);
  const parent = doc('VirtualService', 'root', `  hosts: [a.example.com]\n  http: [{delegate: {name: reviews, namespace: default}}]`);
  t.same(load(`${parent}---\n${delegateTarget}`).messages, []);
  t.same(messages(delegateTarget), [
    'warning CFG_WARN_TRAP f.yaml:1: VirtualService/reviews: spec.hosts: no hosts: a VirtualService without hosts is a delegate, and no VirtualService delegates to this one, so it routes nothing',
  ]);
  t.same(messages(doc('VirtualService', 'd', `  gateways: [gw]\n  tcp: [{${ROUTE}}]`)), [
    'error CFG_ERR_INVALID_FIELD f.yaml:1: VirtualService/d: spec.gateways: delegate virtual service must have no gateways specified',
    'error CFG_ERR_INVALID_FIELD f.yaml:1: VirtualService/d: spec.tcp: delegate virtual service must have no tcp route specified',
    'warning CFG_WARN_TRAP f.yaml:1: VirtualService/d: spec.hosts: no hosts: a VirtualService without hosts is a delegate, and no VirtualService delegates to this one, so it routes nothing',
    'warning CFG_WARN_TRAP f.yaml:1: VirtualService/d: spec.gateways[0]: Gateway default/gw is not defined: rules bound to it apply nowhere',
  ]);
});

t.test('weights: each 0..100 and relative (as Istio today); several destinations cannot all weigh 0', async (t) => {
  t.same(vs(`  hosts: [a.example.com]\n  http: [{route: [{destination: {host: a.example.com}, weight: 30}]}]`), [], 'single destination');
  t.same(vs(`  hosts: [a.example.com]\n  http: [{route: [{destination: {host: a.example.com}, weight: 101}, {destination: {host: b.example.com}}]}]`), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.http[0].route[0].weight: expected an integer between 0 and 100, got 101`,
  ]);
  t.same(vs(`  hosts: [a.example.com]\n  tcp: [{route: [{destination: {host: a.example.com}, weight: 10}, {destination: {host: b.example.com}, weight: 10}]}]`), []);
  t.same(vs(`  hosts: [a.example.com]\n  tcp: [{route: [{destination: {host: a.example.com}, weight: 0}, {destination: {host: b.example.com}}]}]`), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.tcp[0].route: total destination weight = 0`,
  ]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{route: [{destination: {host: a.example.com}, weight: 75}, {destination: {host: b.example.com}, weight: 25}]}]`), []);
});

t.test('StringMatch: header presence {} allowed, uri {} not; regexes checked in every position', async (t) => {
  t.same(vs(`  hosts: [a.example.com]\n  http: [{match: [{headers: {x-a: {}}, queryParams: {q: {}}}], ${ROUTE}}]`), []);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{match: [{uri: {}}], ${ROUTE}}]`), [`error CFG_ERR_REQUIRED ${P}spec.http[0].match[0].uri: set exactly one of exact, prefix, regex`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{match: [{authority: {regex: "a(b"}}], ${ROUTE}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].match[0].authority.regex: invalid regex: Unterminated group`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{match: [{uri: {regex: "/(a)\\\\1"}}], ${ROUTE}}]`), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.http[0].match[0].uri.regex: lookaround and backreferences are not RE2 syntax (Envoy/Istio regexes are RE2)`,
  ]);
});

t.test('Istio parity: http, tcp or tls required; duplicate hosts; retryOn policies; fault needs abort or delay', async (t) => {
  t.same(vs('  hosts: [a.example.com]'), [`error CFG_ERR_REQUIRED ${P}spec: http, tcp or tls must be provided in virtual service`]);
  t.same(vs(`  hosts: [a.example.com, "*.example.com"]\n  http: [{${ROUTE}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[1]: duplicate hosts in virtual service: a.example.com & *.example.com`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{${ROUTE}, retries: {attempts: 2, retryOn: "5xx,bogus,503"}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].retries.retryOn: "bogus" is not a valid retryOn policy`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{${ROUTE}, fault: {}}]`), [`error CFG_ERR_REQUIRED ${P}spec.http[0].fault: HTTP fault injection must have an abort and/or a delay`]);
  t.same(vs(`  hosts: [a.example.com]\n  http: [{${ROUTE}, headers: {request: {set: {":path": /x}}}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.http[0].headers.request.set[":path"]: invalid header ":path": header cannot have ":" prefix`]);
});

t.test('hosts "*" only away from the mesh', async (t) => {
  t.same(vs(`  hosts: ["*"]\n  http: [{${ROUTE}}]`), [`error CFG_ERR_INVALID_FIELD ${P}spec.hosts[0]: wildcard host * is not allowed for virtual services bound to the mesh gateway`]);
  const r = load(`${doc('Gateway', 'gw', '  servers: [{port: {number: 80, name: p80, protocol: HTTP}, hosts: ["*"]}]')}---\n${doc('VirtualService', 'v', `  hosts: ["*"]\n  gateways: [gw]\n  http: [{${ROUTE}}]`)}`);
  t.same(r.messages, []);
});

t.test('SNI hosts: wildcard VS hosts cover subdomains; a wildcard SNI needs a wildcard VS host', async (t) => {
  const tls = (hosts: string, sni: string) => vs(`  hosts: ${hosts}\n  tls: [{match: [{sniHosts: ${sni}}], ${ROUTE}}]`);
  t.same(tls('["*.cnn.com"]', '[edition.cnn.com, "*.edition.cnn.com"]'), []);
  t.same(tls('[edition.cnn.com]', '["*.cnn.com"]'), [`error CFG_ERR_SEMANTIC ${P}spec.tls[0].match[0].sniHosts[0]: SNI host "*.cnn.com" is not a compatible subset of any of the virtual service hosts: [edition.cnn.com]`]);
  t.same(tls('["*.cnn.com"]', '[cnn.com]'), [`error CFG_ERR_SEMANTIC ${P}spec.tls[0].match[0].sniHosts[0]: SNI host "cnn.com" is not a compatible subset of any of the virtual service hosts: [*.cnn.com]`]);
  t.same(vs(`  hosts: [a.example.com]\n  tls: [{match: [{sniHosts: []}], ${ROUTE}}]`), [`error CFG_ERR_REQUIRED ${P}spec.tls[0].match[0].sniHosts: must not be empty`]);
  t.same(vs(`  hosts: [a.example.com]\n  tls: [{match: [{sniHosts: [a.example.com]}]}]`), [`error CFG_ERR_REQUIRED ${P}spec.tls[0].route: missing required field`]);
  t.same(vs(`  hosts: [a.example.com]\n  tcp: [{match: [{port: 443}]}]`), [`error CFG_ERR_REQUIRED ${P}spec.tcp[0].route: missing required field`]);
});
