// A worker's access log when the target is stdout: lines are formatted here and sent to the primary
// in batches, which writes them to the one stdout. Several processes writing to one pipe would
// interleave lines (a write over PIPE_BUF is not atomic); files opened O_APPEND do not need this.
// Bounded: if the IPC channel backs up, lines are dropped and counted, never buffered without limit.

import type { AccessLogRecord, AccessLogSink } from '../observe/access-log-record';
import { FORMATTERS, type AccessLogFormat } from '../observe/access-log';
import type { Counter, StatsStore } from '../observe/stats';
import type { ToPrimary } from './protocol';

const BATCH_BYTES = 64 * 1024;
const BATCH_DELAY_MS = 5;
const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export class IpcAccessLog implements AccessLogSink {
  readonly enabled = true;
  private readonly format: (r: AccessLogRecord) => string;
  private batch = '';
  private timer: NodeJS.Timeout | null = null;
  private inFlight = 0;
  private readonly written: Counter;
  private readonly dropped: Counter;
  private readonly flushNow = (): void => this.send();

  constructor(format: AccessLogFormat, stats: StatsStore) {
    this.format = FORMATTERS[format];
    this.written = stats.counter('access_log.written');
    this.dropped = stats.counter('access_log.dropped');
  }

  log(record: AccessLogRecord): void {
    if (this.inFlight + this.batch.length > MAX_PENDING_BYTES) {
      this.dropped.inc();
      return;
    }
    this.batch += this.format(record);
    this.written.inc();
    if (this.batch.length >= BATCH_BYTES) this.send();
    else if (this.timer === null) this.timer = setTimeout(this.flushNow, BATCH_DELAY_MS);
  }

  private send(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.batch === '' || process.send === undefined) return;
    const data = this.batch;
    this.batch = '';
    this.inFlight += data.length;
    const msg: ToPrimary = { t: 'access-log', data };
    process.send(msg, undefined, undefined, () => {
      this.inFlight -= data.length;
    });
  }

  flush(): Promise<void> {
    this.send();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.inFlight <= 0) resolve();
        else setTimeout(check, 2);
      };
      check();
    });
  }

  close(): Promise<void> {
    return this.flush();
  }
}
