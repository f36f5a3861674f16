// Certificate, key and CA files named by TLS settings: missing or unparsable files are warnings
// when loaded (with the file), errors in `sluice validate`; a real openssl-made pair passes.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validateSources } from '../../../../config/validate';
import { loadText } from '../../../../config/resources/load';
import { doc } from './_load';

/** Loaded as the running proxy loads config: files checked, problems are warnings. */
const messages = (yaml: string) => loadText(yaml, 'f.yaml', { defaultNamespace: 'default', checkFiles: true }).messages.map((m) => `${m.level} ${m.code} ${m.text}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-certs-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const cert = path.join(dir, 'c.pem');
const key = path.join(dir, 'k.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-subj', '/CN=a.example.com', '-days', '1'], { stdio: 'ignore' });
const garbage = path.join(dir, 'garbage.pem');
fs.writeFileSync(garbage, 'not a certificate\n');
const missing = path.join(dir, 'missing.pem');

const gw = (c: string, k: string) => doc('Gateway', 'g',
  `  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: [a.example.com], tls: {mode: SIMPLE, serverCertificate: ${c}, privateKey: ${k}}}]`);

t.test('existing, parsable files: nothing to say', async (t) => {
  t.same(messages(gw(cert, key)), []);
});

t.test('missing and unparsable files: warnings at load, with the file and the field', async (t) => {
  const m = messages(gw(missing, garbage));
  t.equal(m.length, 2);
  t.match(m[0], new RegExp(`^warning CFG_WARN_CERT_FILE f.yaml:1: Gateway/g: spec.servers\\[0\\].tls.serverCertificate: certificate file ${missing} cannot be read \\(ENOENT\\)`));
  t.match(m[1], new RegExp(`^warning CFG_WARN_CERT_FILE f.yaml:1: Gateway/g: spec.servers\\[0\\].tls.privateKey: private key file ${garbage} does not parse`));
});

t.test('validate makes them errors; DestinationRule client certificates too', async (t) => {
  const dr = doc('DestinationRule', 'd', `  host: a.example.com\n  trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: ${garbage}, privateKey: ${key}, caCertificates: ${cert}}}`);
  const r = validateSources([{ file: 'f.yaml', text: dr }], { defaultNamespace: 'default' });
  t.equal(r.ok, false);
  t.same(r.messages.map((m) => `${m.level} ${m.code}`), ['error CFG_WARN_CERT_FILE']);
  t.match(r.lines[0], `spec.trafficPolicy.tls.clientCertificate: certificate file ${garbage} does not parse`);
  t.equal(validateSources([{ file: 'f.yaml', text: dr }], { defaultNamespace: 'default', checkFiles: false }).ok, true, 'checkFiles: false skips them');
  t.equal(validateSources([{ file: 'f.yaml', text: dr }], { defaultNamespace: 'default', uncheckedDir: dir }).ok, true, 'so does the workload certificate directory');
});
