/**
 * Child processes, worker threads and temp dirs of the bench. Everything started here is killed
 * and every temp dir removed when the bench exits, however it exits.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import { request } from "undici";
import type { FromHelper, ToHelper } from "./shared.js";

const exitHooks = new Map<unknown, () => void>();
process.on("exit", () => {
  for (const hook of exitHooks.values()) hook();
});
process.once("SIGINT", () => process.exit(130));
process.once("SIGTERM", () => process.exit(143));

/** A fresh temp dir, removed by `removeTempDir` or at exit. */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  exitHooks.set(dir, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  exitHooks.delete(dir);
}

function killAtExit(child: ChildProcess): void {
  exitHooks.set(child, () => child.kill("SIGKILL"));
  child.once("exit", () => exitHooks.delete(child));
}

/**
 * The fields of a `/proc/…/stat` file after the command name, so that field 3 (the state) comes
 * first: the parent pid is [1], utime and stime (1/100 s) [11] and [12], and the cutime and
 * cstime of children waited for [13] and [14]. Undefined when the file cannot be read.
 */
export function procStatFields(statFile: string): string[] | undefined {
  try {
    const stat = readFileSync(statFile, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/**
 * CPU time (user + system) process `pid` has used, in ms (or the thread whose `stat` file is
 * given); undefined without Linux's /proc.
 */
function processCpuMs(pid: number | undefined, statFile = `/proc/${pid}/stat`): number | undefined {
  if (pid === undefined) return undefined;
  const fields = procStatFields(statFile);
  return fields ? (Number(fields[11]) + Number(fields[12])) * 10 : undefined;
}

/** CPU time (user + system) of process `pid`'s main thread, in ms; undefined without /proc. */
function mainThreadCpuMs(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : processCpuMs(pid, `/proc/${pid}/task/${pid}/stat`);
}

/** Sends `signal`, waits up to `graceMs` for the exit, then kills. Resolves with the exit code. */
async function stopProcess(child: ChildProcess, signal: NodeJS.Signals, graceMs: number) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

type Reply<K extends FromHelper["type"]> = Extract<FromHelper, { type: K }>;

/** A bench helper (receiver, dispatcher, sink) running as a forked process or a worker thread. */
export class Helper {
  private constructor(
    private readonly name: string,
    private readonly host: ChildProcess | Worker,
  ) {
    host.on("error", (error: Error) => console.error(`${name}: ${error.message}`));
  }

  /** Starts `file` (next to this one); resolves once it listens, with its URL. */
  static async start(
    file: string,
    mode: "process" | "thread",
    args: string[] = [],
  ): Promise<{ helper: Helper; url: string }> {
    const path = new URL(file, import.meta.url);
    let host: ChildProcess | Worker;
    if (mode === "thread") {
      const entry = `import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${JSON.stringify(path.href)}); })`;
      host = new Worker(entry, { eval: true, argv: args });
    } else {
      host = fork(path, args);
      killAtExit(host);
    }
    const helper = new Helper(file, host);
    const { port } = await helper.next("listening");
    return { helper, url: `http://127.0.0.1:${port}` };
  }

  /** Sends `message` and waits for the reply of type `reply`. */
  async request<K extends FromHelper["type"]>(message: ToHelper, reply: K): Promise<Reply<K>> {
    const answer = this.next(reply);
    if (this.host instanceof Worker) this.host.postMessage(message);
    else this.host.send(message);
    return answer;
  }

  private next<K extends FromHelper["type"]>(type: K, timeoutMs = 30_000): Promise<Reply<K>> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.host.off("message", onMessage);
        this.host.off("exit", onExit);
      };
      const onMessage = (message: FromHelper) => {
        if (message.type !== type) return;
        done();
        resolve(message as Reply<K>);
      };
      const onExit = (code: number | null) => {
        done();
        reject(new Error(`${this.name} exited (code ${code}) before sending '${type}'`));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} sent no '${type}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.host.on("message", onMessage);
      this.host.on("exit", onExit);
    });
  }

  /** CPU time the helper's process has used, in ms; undefined for a thread. */
  cpuMs(): number | undefined {
    return this.host instanceof Worker ? undefined : processCpuMs(this.host.pid);
  }

  /** CPU time of the helper process's main thread, in ms; undefined for a thread. */
  mainThreadCpuMs(): number | undefined {
    return this.host instanceof Worker ? undefined : mainThreadCpuMs(this.host.pid);
  }

  async stop(): Promise<void> {
    if (this.host instanceof Worker) await this.host.terminate();
    else await stopProcess(this.host, "SIGTERM", 5_000);
  }
}

/** A port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === "string") throw new Error("no free port");
  return address.port;
}

/** A process the bench spawned, with the tail of its output kept for error reports. */
export interface Spawned {
  /** Sends SIGTERM and resolves with the exit code (SIGKILL after `graceMs`). */
  stop(graceMs: number): Promise<number | null>;
  outputTail(): string;
  /** CPU time used so far, in ms; undefined without Linux's /proc. */
  cpuMs(): number | undefined;
  /** CPU time of its main thread so far, in ms; undefined without Linux's /proc. */
  mainThreadCpuMs(): number | undefined;
}

/** Spawns `node args` in `cwd` with `env`, keeping the last 8 KB of its output. */
export function spawnNode(args: string[], cwd: string, env: NodeJS.ProcessEnv): Spawned {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  killAtExit(child);
  child.on("error", (error) => console.error(`node ${args.join(" ")}: ${error.message}`));
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString("utf8")).slice(-8192);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return {
    stop: (graceMs) => stopProcess(child, "SIGTERM", graceMs),
    outputTail: () => tail,
    cpuMs: () => processCpuMs(child.pid),
    mainThreadCpuMs: () => mainThreadCpuMs(child.pid),
  };
}

/** Polls `url` until it answers 200, for at most `timeoutMs`. */
export async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await request(url);
      await response.body.dump();
      if (response.statusCode === 200) return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
}
