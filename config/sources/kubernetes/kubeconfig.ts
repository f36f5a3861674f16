// Where the API server is and how to prove who we are: a kubeconfig file (--kubeconfig, else
// $KUBECONFIG), else the pod's service account (in-cluster), else ~/.kube/config — the order
// Istio's istiod uses. What is read of a kubeconfig: current-context -> cluster (server,
// certificate-authority[-data], insecure-skip-tls-verify, tls-server-name) and user (token,
// tokenFile, client-certificate[-data] + client-key[-data], username/password). `exec` and
// `auth-provider` plugins run programs sluice does not ship: they are reported, not run.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';

/** The service account mount every pod gets (unless automountServiceAccountToken: false). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface ClusterAccess {
  readonly server: URL;
  /** PEM of the CA that signed the server's certificate; null: the system's CAs. */
  readonly ca: Buffer | null;
  readonly cert: Buffer | null;
  readonly key: Buffer | null;
  /** The bearer token now (a token file is re-read: kubelet rotates bound service-account tokens). */
  readonly token: () => string | null;
  readonly basicAuth: string | null;
  readonly insecureSkipTlsVerify: boolean;
  readonly serverName: string | null;
  /** The namespace the context or the service account names (default: `default`). */
  readonly namespace: string;
  /** For logs: `kubeconfig FILE (context X)` or `in-cluster service account`. */
  readonly describe: string;
}

export class KubeconfigError extends Error {
  readonly code = 'CFG_ERR_KUBECONFIG';
}

export interface AccessOptions {
  /** --kubeconfig. */
  readonly kubeconfig: string | null;
  readonly env?: NodeJS.ProcessEnv;
  /** Test seam: where the service account is mounted. */
  readonly serviceAccountDir?: string;
}

export function resolveAccess(o: AccessOptions): ClusterAccess {
  const env = o.env ?? process.env;
  if (o.kubeconfig !== null) return fromKubeconfig(o.kubeconfig);
  const fromEnv = (env['KUBECONFIG'] ?? '').split(path.delimiter).filter((p) => p !== '');
  if (fromEnv.length > 0) {
    // Several files are merged by kubectl; sluice reads the first that exists (said in README.md).
    const first = fromEnv.find((p) => fs.existsSync(p));
    if (first === undefined) throw new KubeconfigError(`KUBECONFIG names no readable file: ${fromEnv.join(path.delimiter)}`);
    return fromKubeconfig(first);
  }
  if (env['KUBERNETES_SERVICE_HOST'] !== undefined && env['KUBERNETES_SERVICE_HOST'] !== '') return inCluster(env, o.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
  const home = path.join(os.homedir(), '.kube', 'config');
  if (fs.existsSync(home)) return fromKubeconfig(home);
  throw new KubeconfigError('--config kubernetes needs credentials: --kubeconfig FILE, $KUBECONFIG, or running in a pod (KUBERNETES_SERVICE_HOST and the service account mount)');
}

/** In a pod: the API server's Service address from the environment kubelet sets, the mounted token and CA. */
export function inCluster(env: NodeJS.ProcessEnv, dir: string): ClusterAccess {
  const host = env['KUBERNETES_SERVICE_HOST']!;
  const port = env['KUBERNETES_SERVICE_PORT'] ?? '443';
  const tokenFile = path.join(dir, 'token');
  const ca = readIfExists(path.join(dir, 'ca.crt'));
  if (!fs.existsSync(tokenFile)) throw new KubeconfigError(`in-cluster: no service account token at ${tokenFile} (automountServiceAccountToken: false?)`);
  const namespace = readIfExists(path.join(dir, 'namespace'))?.toString('utf8').trim() || 'default';
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca, cert: null, key: null, token: fileToken(tokenFile), basicAuth: null,
    insecureSkipTlsVerify: false, serverName: null, namespace, describe: 'in-cluster service account',
  };
}

type Mapping = Record<string, unknown>;

export function fromKubeconfig(file: string): ClusterAccess {
  let doc: unknown;
  try {
    doc = parseYaml(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new KubeconfigError(`kubeconfig ${file}: ${(e as Error).message.split('\n')[0]}`);
  }
  const fail = (msg: string): never => {
    throw new KubeconfigError(`kubeconfig ${file}: ${msg}`);
  };
  if (!isMapping(doc)) return fail('not a kubeconfig (expected a mapping)');
  const dir = path.dirname(path.resolve(file));
  const contextName = str(doc['current-context']) ?? fail('no current-context');
  const context = named(doc['contexts'], contextName, 'context') ?? fail(`context "${contextName}" not found in contexts`);
  const clusterName = str(context['cluster']) ?? fail(`context "${contextName}" names no cluster`);
  const cluster = named(doc['clusters'], clusterName, 'cluster') ?? fail(`cluster "${clusterName}" not found in clusters`);
  const userName = str(context['user']);
  const user = userName === undefined ? {} : named(doc['users'], userName, 'user') ?? fail(`user "${userName}" not found in users`);
  if (user['exec'] !== undefined || user['auth-provider'] !== undefined) {
    fail(`user "${userName}" authenticates with an ${user['exec'] !== undefined ? 'exec' : 'auth-provider'} plugin, which sluice does not run; use a token, a tokenFile or a client certificate`);
  }
  const serverText = str(cluster['server']) ?? fail(`cluster "${clusterName}" has no server`);
  let server: URL;
  try {
    server = new URL(serverText);
  } catch {
    return fail(`cluster "${clusterName}": server "${serverText}" is not a URL`);
  }
  const data = (holder: Mapping, key: string): Buffer | null => {
    const inline = str(holder[`${key}-data`]);
    if (inline !== undefined) return Buffer.from(inline, 'base64');
    const f = str(holder[key]);
    if (f === undefined) return null;
    try {
      return fs.readFileSync(path.resolve(dir, f));
    } catch (e) {
      return fail(`${key} ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  };
  const tokenFile = str(user['tokenFile']);
  const token = str(user['token']);
  const username = str(user['username']);
  const password = str(user['password']);
  return {
    server,
    ca: data(cluster, 'certificate-authority'),
    cert: data(user, 'client-certificate'),
    key: data(user, 'client-key'),
    token: token !== undefined ? () => token : tokenFile !== undefined ? fileToken(path.resolve(dir, tokenFile)) : () => null,
    basicAuth: username !== undefined && password !== undefined ? Buffer.from(`${username}:${password}`).toString('base64') : null,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    serverName: str(cluster['tls-server-name']) ?? null,
    namespace: str(context['namespace']) ?? 'default',
    describe: `kubeconfig ${file} (context ${contextName})`,
  };
}

/** Token read from a file, again at most once a minute (kubelet rewrites it well before expiry). */
function fileToken(file: string): () => string | null {
  let value: string | null = null;
  let readAt = -Infinity;
  return () => {
    const now = Date.now();
    if (now - readAt > 60_000) {
      value = readIfExists(file)?.toString('utf8').trim() ?? value;
      readAt = now;
    }
    return value;
  };
}

function named(list: unknown, name: string, field: string): Mapping | undefined {
  if (!Array.isArray(list)) return undefined;
  const entry = list.find((e) => isMapping(e) && e['name'] === name) as Mapping | undefined;
  const inner = entry?.[field];
  return isMapping(inner) ? inner : entry === undefined ? undefined : {};
}

function isMapping(v: unknown): v is Mapping {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function readIfExists(file: string): Buffer | null {
  try {
    return fs.readFileSync(file);
  } catch {
    return null;
  }
}
