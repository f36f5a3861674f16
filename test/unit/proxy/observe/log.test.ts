import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { createLogger, normalizeLogLevel } from '../../../../proxy/observe/log';

const logModule = path.resolve(__dirname, '../../../../proxy/observe/log.js');

function runChild(script: string, env: Record<string, string | undefined>): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, ['-e', `const { createLogger } = require(${JSON.stringify(logModule)});\n${script}`], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, SLUICE_LOG_LEVEL: undefined, ...env },
  });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

t.test('process logs are JSON on stderr; stdout stays empty for the access log', async (t) => {
  const r = runChild(`const log = createLogger(); log.info({ cluster: 'outbound|80||a' }, 'hello'); log.debug('hidden');`, {});
  t.equal(r.status, 0);
  t.equal(r.stdout, '');
  const lines = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.equal(lines.length, 1, 'debug is below the default info level');
  t.equal(lines[0].msg, 'hello');
  t.equal(lines[0].cluster, 'outbound|80||a');
  t.equal(lines[0].name, 'sluice');
  t.equal(lines[0].level, 30);
});

t.test('SLUICE_LOG_LEVEL sets the level; an explicit argument wins over it', async (t) => {
  const fromEnv = runChild(`const log = createLogger(); log.debug('dbg');`, { SLUICE_LOG_LEVEL: 'debug' });
  t.equal(JSON.parse(fromEnv.stderr.trim()).msg, 'dbg');
  const argWins = runChild(`const log = createLogger('error'); log.warn('w'); log.error('e');`, { SLUICE_LOG_LEVEL: 'debug' });
  t.same(argWins.stderr.trim().split('\n').map((l) => JSON.parse(l).msg), ['e']);
});

t.test('a line logged right before exit is not lost', async (t) => {
  const r = runChild(`createLogger().fatal('bad config'); process.exit(3);`, {});
  t.equal(r.status, 3);
  t.equal(JSON.parse(r.stderr.trim()).msg, 'bad config');
});

t.test('Envoy level names are accepted, unknown ones refused', async (t) => {
  t.equal(normalizeLogLevel('warning'), 'warn');
  t.equal(normalizeLogLevel('critical'), 'fatal');
  t.equal(normalizeLogLevel('off'), 'silent');
  t.equal(normalizeLogLevel('DEBUG'), 'debug');
  t.equal(normalizeLogLevel('verbose'), null);
  const chunks: string[] = [];
  const sink = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  const log = createLogger('warning', sink);
  log.info('no');
  log.warn('yes');
  t.same(chunks.map((c) => JSON.parse(c).msg), ['yes']);
  t.throws(() => createLogger('verbose', sink), { code: 'PRX_ERR_LOG_LEVEL', message: /unknown log level "verbose"/ });
});
