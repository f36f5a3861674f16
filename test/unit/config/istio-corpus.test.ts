// `sluice validate` against Istio's own validation corpus (test/fixtures/istio/, each file naming
// its origin: repository, path, commit). Every document says what Istio does with it
// (`# istio: accept` / `# istio: reject: why`); sluice must agree on every one, and a rejection
// must name the field (a path) so the user can find it. Each document is validated alone, as
// Istio's tests do (several reuse one name). The counts are printed for the README.

import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { validateSources } from '../../../config/validate';

const CORPUS = path.resolve(__dirname, '../../../../test/fixtures/istio');
const VERDICT = /^# istio: (accept|reject)(?:: (.*))?$/m;

interface Case {
  readonly file: string;
  readonly index: number;
  readonly text: string;
  readonly accept: boolean;
  readonly why: string;
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const f of fs.readdirSync(CORPUS).filter((n) => n.endsWith('.yaml')).sort()) {
    const text = fs.readFileSync(path.join(CORPUS, f), 'utf8');
    t.match(text, /^# origin: [\w.-]+\/[\w.-]+ \S.* @ [0-9a-f]{40}$/m, `${f} names its origin (repository, path, commit)`);
    t.match(text, /^# .*Istio (accepts|rejects)/m, `${f} says what Istio does with it`);
    text.split(/^---$/m).forEach((doc, i) => {
      const v = VERDICT.exec(doc);
      if (v === null) return; // the file header before the first document
      out.push({ file: f, index: i + 1, text: doc, accept: v[1] === 'accept', why: v[2] ?? '' });
    });
  }
  return out;
}

t.test('sluice agrees with Istio on every document of the corpus', async (t) => {
  const all = cases();
  t.ok(all.length >= 70, `corpus has ${all.length} documents`);
  let agree = 0;
  const disagreements: string[] = [];
  for (const c of all) {
    const r = validateSources([{ file: `${c.file}#${c.index}`, text: c.text }], { defaultNamespace: 'default', checkFiles: false });
    const errors = r.messages.filter((m) => m.level === 'error');
    if (r.ok === c.accept) agree++;
    else disagreements.push(`${c.file} document ${c.index}: Istio ${c.accept ? 'accepts' : `rejects (${c.why})`}, sluice ${r.ok ? 'accepts' : `rejects:\n    ${errors.map((m) => m.text).join('\n    ')}`}`);
    // A rejection of a resource names the field: `FILE:DOC: KIND/NAME: field.path: message`.
    for (const m of errors) {
      if (/^\S+:\d+: [A-Z]\w*\/[^\s:]+: /.test(m.text)) t.match(m.text, /^\S+:\d+: [A-Z]\w*\/[^\s:]+: [^\s:]+: /, `${c.file}#${c.index}: "${m.text}" has a path`);
    }
  }
  const accepted = all.filter((c) => c.accept).length;
  t.comment(`Istio corpus: sluice agrees with Istio on ${agree} of ${all.length} documents (${accepted} accepted, ${all.length - accepted} rejected by Istio)`);
  t.same(disagreements, [], `agrees on ${agree} of ${all.length}`);
});
