// DestinationRule rules beyond the broken fixtures.
import t from 'tap';
import { doc, messages } from './_load';

const dr = (spec: string) => messages(doc('DestinationRule', 'd', `  host: a.example.com\n${spec}`));
const P = 'f.yaml:1: DestinationRule/d: ';

t.test('client TLS (Istio agent.ValidateTLS): MUTUAL needs cert+key unless credentialName, everywhere a tls can be', async (t) => {
  t.same(dr('  trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-cred}}'), []);
  t.same(dr('  trafficPolicy: {tls: {mode: SIMPLE}}'), []);
  t.same(dr('  subsets:\n  - name: s\n    trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, client_certificate: /c}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.subsets[0].trafficPolicy.tls.credentialName: cannot specify client certificates or CA certificate or CA CRL If credentialName is set`,
  ]);
  t.same(dr('  trafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.tls.insecureSkipVerify: cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true`,
  ]);
  t.same(dr('  subsets:\n  - name: s\n    trafficPolicy:\n      portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL, privateKey: /k}}]'), [
    `error CFG_ERR_REQUIRED ${P}spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.clientCertificate: client certificate required for mutual tls`,
  ]);
});

t.test('portLevelSettings need a port', async (t) => {
  t.same(dr('  trafficPolicy: {portLevelSettings: [{tls: {mode: SIMPLE}}]}'), [`error CFG_ERR_REQUIRED ${P}spec.trafficPolicy.portLevelSettings[0].port: missing required field`]);
});

t.test('load balancer: simple xor consistentHash; one hash key, one algorithm; maglev table sizes', async (t) => {
  t.same(dr('  trafficPolicy: {loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}}'), [`error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer: set only one of simple or consistentHash`]);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, httpHeaderName: x}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.consistentHash: set only one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName (found httpHeaderName and useSourceIp)`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize must be a prime number for maglev`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}}'), []);
  t.same(dr('  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {path: /}}}}'), [`error CFG_ERR_REQUIRED ${P}spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: missing required field`]);
});

t.test('percentages and host', async (t) => {
  t.same(dr('  trafficPolicy: {outlierDetection: {maxEjectionPercent: 101}}'), [`error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.outlierDetection.maxEjectionPercent: expected an integer between 0 and 100, got 101`]);
  t.same(messages(doc('DestinationRule', 'd', '  host: ""')), [`error CFG_ERR_INVALID_FIELD ${P}spec.host: empty domain name not allowed`]);
  t.same(dr('  trafficPolicy: {}'), [`error CFG_ERR_REQUIRED ${P}spec.trafficPolicy: traffic policy must have at least one field`]);
  t.same(dr('  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 0.5ms}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration must be greater than 1ms`,
  ]);
  t.same(dr('  subsets: [{name: V1}, {name: v_2}]'), [`error CFG_ERR_INVALID_FIELD ${P}spec.subsets[1].name: subset name is invalid: v_2`]);
});

t.test('workloadSelector is matchLabels (type.v1beta1), without wildcards', async (t) => {
  t.same(dr('  workloadSelector: {matchLabels: {app: sleep}}'), []);
  t.same(dr('  workloadSelector: {matchLabels: {app: "*"}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.workloadSelector.matchLabels.app: wildcard is not supported in selector: "app=*"`,
  ]);
  t.same(dr('  workloadSelector: {labels: {app: sleep}}'), [
    `warning CFG_WARN_UNKNOWN_FIELD ${P}spec.workloadSelector: unknown field "labels"`,
    `warning CFG_WARN_TRAP ${P}spec.workloadSelector: workload selector specified without labels: it selects every workload in the namespace`,
  ]);
});

t.test('warmup and localityLbSetting, as Istio checks them', async (t) => {
  t.same(dr('  trafficPolicy: {loadBalancer: {warmup: {duration: 300s, minimumPercent: 5.0, aggression: 5.0}}}'), []);
  t.same(dr('  trafficPolicy: {loadBalancer: {warmup: {duration: 300s, minimumPercent: 150.0}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.warmup.minimumPercent: expected a number between 0 and 100, got 150`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {localityLbSetting: {distribute: [{from: us/*, to: {"us/a/*": 60, "us/b/*": 30}}]}}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: total locality weight 90 != 100`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us, to: us}]}}, outlierDetection: {consecutive5xxErrors: 1}}'), [
    `error CFG_ERR_INVALID_FIELD ${P}spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: locality lb failover settings must specify different regions`,
  ]);
  t.same(dr('  trafficPolicy: {loadBalancer: {localityLbSetting: {failover: [{from: us, to: eu}]}}}'), [
    `warning CFG_WARN_TRAP ${P}spec.trafficPolicy.loadBalancer.localityLbSetting: outlier detection policy must be provided for failover`,
  ]);
});
