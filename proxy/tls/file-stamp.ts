// A cheap "did these files change?" fingerprint for certificate rotation (istio-agent and
// cert-manager replace files by rename): mtime, size and inode of each, 'missing' for one that is
// not there. Callers stat at most once per RECHECK_MS, never per connection.

import fs from 'node:fs';

/** How often (ms) a context's files are stat()ed for changes. */
export const RECHECK_MS = 1000;

export function fileStamp(files: readonly (string | null)[]): string {
  return files.filter((f): f is string => f !== null).map((f) => {
    try {
      const s = fs.statSync(f);
      return s.mtimeMs + ':' + s.size + ':' + s.ino;
    } catch {
      return 'missing';
    }
  }).join('|');
}
