// `sluice validate` (the real CLI) over a directory mixing Deployments, Services, security kinds and
// Gateway API objects with Istio's kinds (test/fixtures/other-kinds/, which other-kinds.test.ts also
// runs as a gateway): valid, each other kind warned once, and every object of them named as not checked.
import t from 'tap';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { validatePaths } from '../../../config/validate';

const ROOT = path.resolve(__dirname, '../../../..');
const DIR = path.join(ROOT, 'test/fixtures/other-kinds');
const CLI = path.join(ROOT, 'dist', 'proxy', 'cli.js');

t.test('validatePaths: valid; the Istio objects are checked, the 7 others are listed as not checked (AuthorizationPolicy is read)', async (t) => {
  const r = validatePaths([DIR], { defaultNamespace: 'default' });
  t.equal(r.ok, true);
  t.same(r.messages.filter((m) => m.level === 'error'), []);
  t.same(r.notChecked.map((l) => l.replace(DIR + '/', '')), [
    'gateway-api.yaml:1: Gateway/egress (gateway.networking.k8s.io/v1)',
    'gateway-api.yaml:2: HTTPRoute/route (gateway.networking.k8s.io/v1)',
    'security.yaml:1: PeerAuthentication/default (security.istio.io/v1)',
    'security.yaml:2: PeerAuthentication/permissive (security.istio.io/v1)',
    'security.yaml:4: Sidecar/default (networking.istio.io/v1)',
    'workloads.yaml:1: Deployment/app (apps/v1)',
    'workloads.yaml:2: Service/app (v1)',
  ]);
  const kinds = r.messages.filter((m) => m.code === 'CFG_WARN_IGNORED_KIND').map((m) => m.text.split(': ')[1]);
  t.equal(kinds.length, new Set(kinds).size, 'one warning per kind');
});

function validate(config: string): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'validate', '--config', config], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 60_000 }, (err, stdout) => {
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stdout });
    });
  });
}

t.test('an undefined subset is reported once, in one wording (loader and compiler used to both say it)', async (t) => {
  const out = await validate(path.join(ROOT, 'test/fixtures/broken/trap-subset-undefined.yaml'));
  t.equal(out.code, 0, out.stdout);
  t.equal(out.stdout.split('\n').filter((l) => l.startsWith('warning:') && l.includes('cnn-typo')).length, 1, out.stdout);
});

t.test('sluice validate exits 0 and prints the not-checked objects', async (t) => {
  const out = await validate(DIR);
  t.equal(out.code, 0, out.stdout);
  t.match(out.stdout, `${DIR}: valid`);
  t.equal(out.stdout.split('\n').filter((l) => l.startsWith('not checked (not a kind sluice reads): ')).length, 7);
  t.match(out.stdout, `not checked (not a kind sluice reads): ${DIR}/workloads.yaml:1: Deployment/app (apps/v1)`);
});
