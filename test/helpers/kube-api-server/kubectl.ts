// Drive the test API server with the real kubectl (installed on this machine), through a
// kubeconfig the test writes: the same file the gateway under test is given (--kubeconfig).

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface KubeconfigOptions {
  readonly server: string;
  readonly token?: string;
  /** PEM: written to a file next to the kubeconfig and named as `certificate-authority` (a relative path). */
  readonly caPem?: string;
  readonly clientCertPem?: string;
  readonly clientKeyPem?: string;
  readonly insecureSkipTlsVerify?: boolean;
  readonly namespace?: string;
}

/** Writes `DIR/kubeconfig` (context `test`) and returns its path. */
export function writeKubeconfig(dir: string, o: KubeconfigOptions): string {
  const cluster: string[] = [`    server: ${o.server}`];
  if (o.caPem !== undefined) {
    fs.writeFileSync(path.join(dir, 'ca.pem'), o.caPem);
    cluster.push('    certificate-authority: ca.pem');
  }
  if (o.insecureSkipTlsVerify === true) cluster.push('    insecure-skip-tls-verify: true');
  const user: string[] = [];
  if (o.token !== undefined) user.push(`    token: ${o.token}`);
  if (o.clientCertPem !== undefined) user.push(`    client-certificate-data: ${Buffer.from(o.clientCertPem).toString('base64')}`);
  if (o.clientKeyPem !== undefined) user.push(`    client-key-data: ${Buffer.from(o.clientKeyPem).toString('base64')}`);
  const file = path.join(dir, 'kubeconfig');
  fs.writeFileSync(file, [
    'apiVersion: v1', 'kind: Config', 'current-context: test',
    'clusters:', '- name: test', '  cluster:', ...cluster,
    'users:', '- name: tester', '  user:', ...(user.length > 0 ? user : ['    username: nobody']),
    'contexts:', '- name: test', '  context:', '    cluster: test', '    user: tester', `    namespace: ${o.namespace ?? 'default'}`,
    '',
  ].join('\n'));
  return file;
}

/**
 * Runs kubectl against the kubeconfig; resolves with stdout, rejects with stderr. Client-side
 * schema validation is off: it needs the server's OpenAPI documents (protobuf), which the test
 * server does not serve (its README says so).
 */
export function kubectl(kubeconfig: string, args: readonly string[], stdin?: string): Promise<string> {
  const cacheDir = path.join(path.dirname(kubeconfig), 'kube-cache');
  const validate = args[0] === 'apply' || args[0] === 'create' || args[0] === 'replace' ? ['--validate=false'] : [];
  return new Promise((resolve, reject) => {
    const child = execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args, ...validate], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
      else resolve(stdout);
    });
    if (stdin !== undefined) child.stdin!.end(stdin);
  });
}
