// The default --concurrency from the cgroup's CPU limit, read from cgroup files laid out as the
// kernel does (v2 unified and v1 cpu,cpuacct) in a temp dir.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { cgroupCpuLimit, defaultConcurrency } from '../../../../proxy/workers/cpu-limit';

function tree(t: { teardown(fn: () => void): void }, files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-cgroup-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text + '\n');
  }
  return root;
}

t.test('cgroup v2 cpu.max', async (t) => {
  const root = tree(t, { 'kubepods/pod1/c1/cpu.max': '150000 100000', 'cpu.max': 'max 100000' });
  t.equal(cgroupCpuLimit(root, '0::/kubepods/pod1/c1\n'), 1.5, "the process's own cgroup");
  t.equal(cgroupCpuLimit(root, '0::/\n'), null, "'max' = no limit");
  const ns = tree(t, { 'cpu.max': '200000 100000' });
  t.equal(cgroupCpuLimit(ns, '0::/some/path/not/mounted\n'), 2, 'cgroup namespace: the mount root is the container');
});

t.test('cgroup v1 cfs quota / period', async (t) => {
  const root = tree(t, { 'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '300000', 'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000' });
  t.equal(cgroupCpuLimit(root, '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n'), 3);
  const none = tree(t, { 'cpu/cpu.cfs_quota_us': '-1', 'cpu/cpu.cfs_period_us': '100000' });
  t.equal(cgroupCpuLimit(none, '3:cpu:/\n'), null, '-1 = no limit');
  t.equal(cgroupCpuLimit(none, '9:name=systemd:/\n'), null, 'no cpu controller listed');
});

t.test('defaultConcurrency rounds the limit up, within 1..cores', async (t) => {
  t.equal(defaultConcurrency(null, 8), 8, 'no limit: the cores');
  t.equal(defaultConcurrency(1.5, 8), 2);
  t.equal(defaultConcurrency(2, 8), 2);
  t.equal(defaultConcurrency(0.25, 8), 1, 'a quarter CPU still gets one worker');
  t.equal(defaultConcurrency(32, 4), 4, 'never more than the cores');
});
