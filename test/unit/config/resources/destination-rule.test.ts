// DestinationRule rules beyond the broken fixtures.
import t from 'tap';
import { doc, messages } from './_load';

const dr = (spec: string) => messages(doc('DestinationRule', 'd', `  host: a.example.com\n${spec}`));
const P = 'f.yaml:1: DestinationRule/d: ';

t.test('client TLS: MUTUAL needs cert+key unless credentialName; ISTIO_MUTUAL takes none; everywhere a tls can be', async (t) => {
  t.same(dr('  trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cred}}'), []);
  t.same(dr('  trafficPolicy: {tls: {mode: SIMPLE}}'), []);
  t.same(dr('  subsets:\n  - name: s\n    trafficPolicy: {tls: {mode: ISTIO_MUTUAL, sni: a.example.com, client_certificate: /c}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.subsets[0].trafficPolicy.tls.client_certificate: ISTIO_MUTUAL TLS must not set clientCertificate (the workload identity is used)`,
  ]);
  t.same(dr('  subsets:\n  - name: s\n    trafficPolicy:\n      portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, privateKey: /k}}]'), [
    `error CFG_ERR_REQUIRED ${P}spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.clientCertificate: MUTUAL TLS requires clientCertificate (or credentialName)`,
  ]);
});

t.test('portLevelSettings need a port', async (t) => {
  t.same(dr('  trafficPolicy: {portLevelSettings: [{tls: {mode: SIMPLE}}]}'), [`error CFG_ERR_REQUIRED ${P}spec.trafficPolicy.portLevelSettings[0].port: missing required field`]);
});

t.test('load balancer: simple xor consistentHash; consistentHash needs exactly one key', async (t) => {
  t.same(dr('  trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}'), [`error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer: set only one of simple or consistentHash`]);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 10}}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.consistentHash: set exactly one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (found none)`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {path: /}}}}'), [`error CFG_ERR_REQUIRED ${P}spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: missing required field`]);
});

t.test('percentages and host', async (t) => {
  t.same(dr('  trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}'), [`error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.outlierDetection.maxEjectionPercent: expected an integer between 0 and 100, got 101`]);
  t.same(messages(doc('DestinationRule', 'd', '  host: ""')), [`error CFG_ERR_INVALID_FIELD ${P}spec.host: host must not be empty`]);
});
