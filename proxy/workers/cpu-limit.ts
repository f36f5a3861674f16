// The default --concurrency: the container's CPU limit when it has one, else the cores Node sees.
// In a pod with `resources.limits.cpu: 2` on a 64-core node, 64 workers would each get 1/32 of a
// core and the CFS quota would throttle them all; Istio's pilot-agent sizes Envoy's --concurrency
// from the same limit. The limit is read from the process's own cgroup:
//   v2: <mount>/<path>/cpu.max                       "200000 100000" (quota period) or "max 100000"
//   v1: <mount>/cpu,cpuacct/<path>/cpu.cfs_quota_us  (-1 = none) and cpu.cfs_period_us
// <path> comes from /proc/self/cgroup; inside a container (cgroup namespace) it is "/", and where a
// runtime mounts only the container's own cgroup at the mount root, the root files are the ones.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

function read(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Candidate directories: the process's cgroup path under the mount, then the mount itself. */
function candidates(mount: string, cgroupPath: string): string[] {
  const own = path.join(mount, cgroupPath);
  return own === mount ? [mount] : [own, mount];
}

/** CPUs the cgroup allows (quota / period, fractional), or null when unlimited / no cgroup. */
export function cgroupCpuLimit(root = '/sys/fs/cgroup', procSelfCgroup = read('/proc/self/cgroup') ?? ''): number | null {
  const lines = procSelfCgroup.split('\n').filter((l) => l !== '');
  // v2: "0::/path"
  const unified = lines.find((l) => l.startsWith('0::'));
  if (unified !== undefined) {
    for (const dir of candidates(root, unified.slice(3))) {
      const max = read(path.join(dir, 'cpu.max'));
      if (max === null) continue;
      const [quota, period] = max.split(/\s+/);
      if (quota === 'max') return null;
      const q = Number(quota);
      const p = Number(period ?? '100000');
      if (q > 0 && p > 0) return q / p;
    }
  }
  // v1: "4:cpu,cpuacct:/path" (or "cpuacct,cpu", or "cpu" alone)
  for (const l of lines) {
    const [, controllers, cgroupPath] = l.split(':', 3) as [string, string | undefined, string | undefined];
    if (controllers === undefined || cgroupPath === undefined || !controllers.split(',').includes('cpu')) continue;
    for (const mountName of [controllers, 'cpu,cpuacct', 'cpu']) {
      for (const dir of candidates(path.join(root, mountName), cgroupPath)) {
        const quota = read(path.join(dir, 'cpu.cfs_quota_us'));
        if (quota === null) continue;
        const q = Number(quota);
        if (!(q > 0)) return null; // -1: no limit
        const p = Number(read(path.join(dir, 'cpu.cfs_period_us')) ?? '100000');
        return p > 0 ? q / p : null;
      }
    }
  }
  return null;
}

/** --concurrency default: ceil(CPU limit) (a 1.5-CPU limit gets 2 workers), at most the cores, at least 1. */
export function defaultConcurrency(limit: number | null = cgroupCpuLimit(), cores = os.availableParallelism()): number {
  if (limit === null) return cores;
  return Math.max(1, Math.min(cores, Math.ceil(limit - 1e-9)));
}
