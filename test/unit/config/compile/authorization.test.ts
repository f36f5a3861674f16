// AuthorizationPolicy: loading (apiVersions, errors with their path), which policies apply to a
// proxy, and Istio's evaluation order and matching, on the compiled form.

import t from 'tap';
import { compile } from '../../../../config/compile/index';
import { evaluateAuthz, istioStringMatch, type AuthzRequest } from '../../../../config/compile/authorization';
import { loadText } from '../../../../config/resources/load';

function ap(name: string, ns: string, spec: string, apiVersion = 'security.istio.io/v1'): string {
  return `---\napiVersion: ${apiVersion}\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}\n`;
}

function policiesFor(text: string, namespace = 'istio-system', labels: Record<string, string> = { istio: 'egressgateway' }) {
  const r = loadText(text, 'ap.yaml', { defaultNamespace: namespace });
  t.same(r.messages.filter((m) => m.level === 'error'), [], 'loads without errors');
  return compile(r.resources, { role: 'gateway', namespace, labels, outboundPolicy: 'REGISTRY_ONLY', certsDir: '/nonexistent' }).authorization ?? [];
}

const req = (o: Partial<AuthzRequest>): AuthzRequest => ({ principal: null, sourceIp: '198.18.0.5', host: 'api.pay.example', sni: null, port: 443, method: 'GET', path: '/', ...o });

t.test('load: both apiVersions read; a networking apiVersion is an error with its path', async (t) => {
  const ok = loadText(ap('a', 'x', '  action: DENY\n  rules: [{}]') + ap('b', 'x', '  rules: [{}]', 'security.istio.io/v1beta1'), 'ap.yaml', { defaultNamespace: 'x' });
  t.equal(ok.resources.authorizationPolicies?.length, 2);
  const bad = loadText(ap('c', 'x', '  action: MAYBE', 'networking.istio.io/v1'), 'ap.yaml', { defaultNamespace: 'x' });
  t.match(bad.messages.map((m) => m.text), [/ap\.yaml:1: AuthorizationPolicy\/c: apiVersion: unsupported apiVersion "networking\.istio\.io\/v1"/, /spec\.action: /]);
  const when = loadText(ap('w', 'x', '  action: DENY\n  rules: [{when: [{key: source.principal, values: [a]}]}]'), 'ap.yaml', { defaultNamespace: 'x' });
  t.match(when.messages.map((m) => `${m.code} ${m.text}`), [/^CFG_WARN_NOT_ACTED_ON .*spec\.rules\[0\]\.when\[0\]\.key: when key "source\.principal" is carried but not acted on/]);
  const custom = loadText(ap('d', 'x', '  action: CUSTOM\n  rules: [{}]'), 'ap.yaml', { defaultNamespace: 'x' });
  t.match(custom.messages.find((m) => m.level === 'error')?.text, /spec\.action: CUSTOM action requires a provider/);
});

t.test('which policies apply: root namespace for all, own namespace, selector a subset of the labels', async (t) => {
  const text = ap('root', 'istio-system', '  action: DENY\n  rules: [{}]') + ap('own', 'default', '  action: DENY\n  rules: [{}]')
    + ap('other-labels', 'istio-system', '  selector: {matchLabels: {app: x}}\n  action: DENY\n  rules: [{}]');
  t.same(policiesFor(text, 'default', { app: 'sleep' }).map((p) => p.name), ['root', 'own']);
  t.same(policiesFor(text, 'istio-system').map((p) => p.name), ['root']);
});

t.test('evaluation: CUSTOM, then DENY, then ALLOW; no ALLOW policy = allowed', async (t) => {
  const allow = ap('allow', 'istio-system', '  rules:\n  - from: [{source: {principals: ["cluster.local/ns/default/sa/billing"]}}]\n    to: [{operation: {hosts: ["*.pay.example"], ports: ["443"]}}]');
  const deny = ap('deny', 'istio-system', '  action: DENY\n  rules:\n  - from: [{source: {namespaces: [legacy]}}]');
  const ps = policiesFor(allow + deny);
  const billing = 'cluster.local/ns/default/sa/billing';
  t.match(evaluateAuthz(ps, req({ principal: billing })), { allowed: true, policy: 'ns[istio-system]-policy[allow]-rule[0]' });
  t.match(evaluateAuthz(ps, req({ principal: billing, port: 8443 })), { allowed: false, policy: 'none' }, 'port not allowed');
  t.match(evaluateAuthz(ps, req({ principal: 'cluster.local/ns/legacy/sa/billing' })), { allowed: false, policy: 'ns[istio-system]-policy[deny]-rule[0]' }, 'namespace from the identity, DENY first');
  t.match(evaluateAuthz(ps, req({})), { allowed: false }, 'no identity: no ALLOW match');
  t.equal(evaluateAuthz([], req({})), null, 'no policy: RBAC not in play');
  t.match(evaluateAuthz(policiesFor(deny), req({})), { allowed: true, policy: null }, 'only DENY policies, none matching: allowed');
  const custom = ap('ext', 'istio-system', '  action: CUSTOM\n  provider: {name: ext}\n  rules: [{to: [{operation: {paths: ["/x*"]}}]}]');
  t.match(evaluateAuthz(policiesFor(custom + allow), req({ principal: billing, path: '/x/1' })), { allowed: false, custom: true }, 'CUSTOM before all, denied (no authorizer)');
});

t.test('ipBlocks, when connection.sni, not-fields, fields not acted on', async (t) => {
  const ps = policiesFor(ap('p', 'istio-system', '  rules:\n  - from: [{source: {ipBlocks: [198.18.0.0/24], notIpBlocks: [198.18.0.9]}}]\n    when: [{key: connection.sni, values: ["*.wild.example"]}]'));
  t.match(evaluateAuthz(ps, req({ sni: 'a.wild.example' })), { allowed: true });
  t.match(evaluateAuthz(ps, req({ sni: 'a.other.example' })), { allowed: false }, 'sni outside');
  t.match(evaluateAuthz(ps, req({ sni: 'a.wild.example', sourceIp: '198.18.0.9' })), { allowed: false }, 'notIpBlocks');
  t.match(evaluateAuthz(ps, req({ sni: 'a.wild.example', sourceIp: '198.18.1.1' })), { allowed: false }, 'outside ipBlocks');
  const jwtAllow = policiesFor(ap('j', 'istio-system', '  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]'));
  t.match(evaluateAuthz(jwtAllow, req({})), { allowed: false }, 'ALLOW with a field not acted on never matches');
  const otherKey = policiesFor(ap('k', 'istio-system', '  action: DENY\n  rules: [{when: [{key: "request.headers[x]", values: [a]}]}]'));
  t.match(evaluateAuthz(otherKey, req({})), { allowed: false }, 'DENY with a when key not acted on is applied without it');
  t.ok(istioStringMatch('*', 'x') && istioStringMatch('/a*', '/ab') && istioStringMatch('*.b', 'a.b') && !istioStringMatch('a', 'ab'));
});
