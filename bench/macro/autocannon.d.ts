// The part of autocannon 8's API the bench uses (the package ships no types).
declare module 'autocannon' {
  interface Options {
    url: string;
    connections?: number;
    duration?: number;
    headers?: Record<string, string>;
    overallRate?: number;
    pipelining?: number;
  }
  interface Stat { total: number; average: number; p50: number; p99: number }
  interface Result {
    duration: number;
    requests: Stat;
    latency: Stat;
    errors: number;
    timeouts: number;
    non2xx: number;
  }
  interface Instance extends PromiseLike<Result> {
    on(event: 'response', fn: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
    stop(): void;
  }
  function autocannon(opts: Options): Instance;
  export = autocannon;
}
