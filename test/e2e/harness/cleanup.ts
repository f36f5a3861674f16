// One process-wide list of things to undo when the test process ends, however it ends.
//
// tap's t.teardown covers a normal finish and a failed assertion, but not Ctrl-C, a SIGTERM from
// tap's own timeout, or an uncaught throw that kills the process. Network namespaces and
// /etc/netns/<ns> dirs outlive the process, so each owner also registers a *synchronous* undo here:
// on 'exit' only synchronous code runs, so async cleanup would never finish there.

type SyncUndo = () => void;

const pending = new Set<SyncUndo>();
let installed = false;

// Signals after which we must clean up and then still die by that signal, as the default would.
const FATAL_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function runAll(): void {
  for (const undo of [...pending]) {
    pending.delete(undo);
    try {
      undo();
    } catch (err) {
      // Keep going: one failed undo must not leave the others' namespaces behind.
      process.stderr.write(`e2e cleanup: ${(err as Error).message}\n`);
    }
  }
}

function onFatalSignal(signal: NodeJS.Signals): void {
  runAll();
  // Re-raise with our listener gone so the process ends the way it would have without us (tap's
  // signal-exit listener, if any, sees only itself now and re-raises too).
  for (const s of FATAL_SIGNALS) process.removeListener(s, onFatalSignal);
  process.kill(process.pid, signal);
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const s of FATAL_SIGNALS) process.on(s, onFatalSignal);
}

/** Register a synchronous undo to run at process exit or on a fatal signal; returns the unregister function. */
export function onProcessEnd(undo: SyncUndo): () => void {
  install();
  pending.add(undo);
  return () => {
    pending.delete(undo);
  };
}
