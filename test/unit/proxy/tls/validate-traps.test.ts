// `sluice validate` warnings for the TLS traps: what fires, and that
// the seed samples' own TLS configurations (S3 origination, S2m/S4m ISTIO_MUTUAL) stay silent.

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadText } from '../../../../config/resources/load';

const messages = (yaml: string): string[] => loadText(yaml, 'f.yaml', { defaultNamespace: 'default' }).messages.map((m) => `${m.level} ${m.code} ${m.text}`);

const SE = (protocol: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: cnn }
spec:
  hosts: [edition.cnn.com]
  ports: [{ number: 443, name: p, protocol: ${protocol} }]
  resolution: DNS
`;
const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: originate }
spec:
  host: edition.cnn.com
  trafficPolicy:
    portLevelSettings:
    - port: { number: 443 }
      tls: { mode: SIMPLE }
`;

t.test('SIMPLE origination on a port declared HTTPS/TLS: TLS inside the app\'s TLS', async (t) => {
  for (const protocol of ['HTTPS', 'TLS']) {
    t.same(messages(SE(protocol) + '---\n' + DR), [
      `warning CFG_WARN_TRAP f.yaml:2: DestinationRule/originate: spec.trafficPolicy.portLevelSettings[0].tls: mode SIMPLE on port 443, which ServiceEntry default/cnn declares ${protocol}: ` +
      'the app already speaks TLS there, so a sidecar would wrap it in a second TLS layer; to originate TLS, declare the port HTTP and send plain HTTP (seed S3)',
    ], protocol);
  }
  t.same(messages(SE('HTTP') + '---\n' + DR), [], 'declared HTTP (the seed S3 way): no warning');
  t.same(messages(SE('HTTPS') + '---\n' + DR.replace('mode: SIMPLE', 'mode: ISTIO_MUTUAL')), [], 'ISTIO_MUTUAL to a gateway\'s TLS port is the S4m pattern: no warning');
});

t.test('the seed samples with TLS validate without warnings', async (t) => {
  for (const name of ['s2m', 's3', 's4', 's4m', 's6']) {
    const dir = path.join(__dirname, '..', '..', '..', '..', '..', 'config', 'samples', name);
    const text = fs.readdirSync(dir).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n---\n');
    t.same(messages(text), [], name);
  }
});
