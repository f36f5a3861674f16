// The command line of the Kubernetes source: flags and their SLUICE_* variables, what is refused
// (mixing with files; validate/explain), and how a start fails (bad kubeconfig, RBAC refusal):
// real child processes, exit codes and messages.
import t from 'tap';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseFlags, runOptionsFrom } from '../../../../../proxy/cli';
import { KubeApiServer } from '../../../../helpers/kube-api-server/server';
import { writeKubeconfig } from '../../../../helpers/kube-api-server/kubectl';

const CLI = path.resolve(__dirname, '../../../../../proxy/cli.js');
const RUN = ['kubeconfig', 'watch-namespaces', 'role', 'config'];

function sluice(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' }, timeout: 30_000 }, (err, _out, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stderr });
    });
  });
}

t.test('flags and environment', async (t) => {
  const o = runOptionsFrom(parseFlags(['--role', 'gateway', '--config', 'kubernetes', '--kubeconfig', '/k', '--watch-namespaces', 'a, b'], RUN));
  t.same(o.kubernetes, { kubeconfig: '/k', watchNamespaces: ['a', 'b'] });
  const env = runOptionsFrom(parseFlags([], RUN, { SLUICE_ROLE: 'gateway', SLUICE_CONFIG: 'kubernetes', SLUICE_WATCH_NAMESPACES: 'istio-system,default' }));
  t.same(env.kubernetes, { kubeconfig: null, watchNamespaces: ['istio-system', 'default'] });
  t.throws(() => runOptionsFrom(parseFlags(['--role', 'gateway', '--config', 'kubernetes', '--config', 'dir'], RUN)), { code: 'CLI_ERR_USAGE', message: /cannot be combined with files/ });
});

t.test('refusals and failed starts', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-kube-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const v = await sluice(['validate', '--config', 'kubernetes']);
  t.equal(v.code, 2);
  t.match(v.stderr, /validate reads files and directories; --config kubernetes is for sluice run/);

  fs.writeFileSync(path.join(dir, 'bad'), 'apiVersion: v1\nkind: Config\ncurrent-context: gone\n');
  const bad = await sluice(['run', '--role', 'gateway', '--config', 'kubernetes', '--kubeconfig', path.join(dir, 'bad'), '--admin', '127.0.0.1:0']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /sluice: CFG_ERR_KUBECONFIG: kubeconfig .*bad: context "gone" not found in contexts/);

  const api = new KubeApiServer();
  api.forbid('services');
  const server = await api.listen();
  t.teardown(() => api.close());
  const refused = await sluice(['run', '--role', 'gateway', '--config', 'kubernetes', '--kubeconfig', writeKubeconfig(dir, { server }), '--admin', '127.0.0.1:0', '--concurrency', '1']);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /sluice: CFG_ERR_KUBE_API: services is forbidden: User ".*" cannot list resource "services"/);
});
